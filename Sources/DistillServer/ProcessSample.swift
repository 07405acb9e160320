import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// What the process uses of the machine, read from Linux's /proc as the Prometheus client
/// libraries of other languages do (`process_*`).
struct ProcessSample {
    var residentBytes: Double
    var virtualBytes: Double
    var openDescriptors: Double
    var maxDescriptors: Double

    /// Nil where /proc is not there.
    static func current() -> ProcessSample? {
        // statm: sizes in pages (total, resident, …).
        guard let statm = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8),
            case let pages = statm.split(separator: " ").compactMap({ Double($0) }), pages.count >= 2,
            let descriptors = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")
        else { return nil }
        let pageSize = Double(sysconf(Int32(_SC_PAGESIZE)))
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        return ProcessSample(
            residentBytes: pages[1] * pageSize, virtualBytes: pages[0] * pageSize,
            // The listing itself held one descriptor open.
            openDescriptors: Double(descriptors.count - 1), maxDescriptors: Double(limit.rlim_cur))
    }

    /// When the process started, in seconds since the epoch: the boot time plus the process's
    /// start in clock ticks since boot (field 22 of /proc/self/stat).
    static let startTime: Double? = {
        guard let stat = try? String(contentsOfFile: "/proc/self/stat", encoding: .utf8),
            // The command name (field 2) may hold spaces; the fields after it start at field 3.
            let end = stat.lastIndex(of: ")"),
            case let fields = stat[stat.index(after: end)...].split(separator: " "), fields.count > 19,
            let ticks = Double(fields[19]),
            let bootLine = try? String(contentsOfFile: "/proc/stat", encoding: .utf8).split(separator: "\n")
                .first(where: { $0.hasPrefix("btime ") }),
            let boot = Double(bootLine.dropFirst(6))
        else { return nil }
        return boot + ticks / Double(sysconf(Int32(_SC_CLK_TCK)))
    }()
}
