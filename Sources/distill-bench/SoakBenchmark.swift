import ArgumentParser
import AsyncHTTPClient
import DistillAPI
import DistillClient
import Foundation
import GRDB
import SeededRandom
import Synchronization

/// distilld and teacher-sim under a steady mixed load for a fixed time, watching for errors, a
/// crash, and memory or descriptors that keep growing.
struct SoakBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "soak",
        abstract: "A steady mixed load on distilld for a fixed time: no error, no crash, no memory or descriptors that keep growing.",
        discussion: """
            distill-bench soak                      10 minutes (make soak, on the release build)
            distill-bench soak --seconds 60         the CI mode (make test, on the debug build)

            Warm-up first (not timed): the daemon is taught --min-rows + 200 distinct Banking77 \
            queries, which fill the cache to its cap, and trains its first student on its own \
            schedule (nobody asks for a run). Then, for --seconds, --workers clients (one \
            DistillClient each, over TCP) send a seeded mix of new queries (paced so the pool of \
            ~13,000 lasts the run: student or teacher answers), repeats of queries the teacher \
            answered lately (cache hits) and refreshes (x-distill-cache: refresh: teacher calls that \
            replace an entry), a quarter of each as streams read to [DONE]. The cache is capped (LRU \
            eviction and HNSW deletions run) and the student retrains every --min-new-rows teacher \
            answers on a bounded window: once warm, nothing the daemon holds should grow with time.

            Every --sample-seconds it samples distilld's RSS (/proc/PID/status), open descriptors \
            (/proc/PID/fd) and the SQLite files' size. It fails on any error response or broken \
            stream, on a crash, and on RSS or descriptors that keep growing, which takes both a \
            least-squares slope over the second half of the samples above --rss-slope-mib (MiB/min) \
            or --fd-slope (1/min), and a floor that rose: the second half's lowest sample above the \
            first half's lowest under load by 16 MiB (8 descriptors). Each alone misleads: every \
            re-distillation briefly adds 20-35 MiB of training buffers, so single samples swing, and \
            a 60-s run has only four samples in its second half; the floor, the RSS between runs, is \
            what a leak raises. The sample at 0 precedes the load, whose first seconds add a step, \
            not growth.

            Prints a table of the samples and a JSON summary (also to --json FILE). Exit 0 pass, 1 fail.
            """)

    @OptionGroup var options: ReliabilityOptions
    @Option(help: "How long the soak runs after warm-up, in seconds.") var seconds = 600.0
    @Option(help: "Clients sending at once.") var workers = 6
    @Option(help: "Seconds between samples.") var sampleSeconds = 10.0
    @Option(help: "Teacher answers between re-distillations (DISTILL_DISTILL_MIN_NEW_ROWS).") var minNewRows = 500
    @Option(help: "RSS growth limit, MiB per minute.") var rssSlopeMib = 2.0
    @Option(help: "Descriptor growth limit, per minute.") var fdSlope = 1.0

    func run() async throws {
        let interrupt = BenchProcesses.killAllOnInterrupt()
        defer { interrupt.forEach { $0.cancel() } }
        let work = try options.workDirectory("soak")
        let build = options.binaries.lastPathComponent
        Reliability.log("soak: \(seconds) s, \(build) build in \(options.binaries.path), work directory \(work.path)")
        let http = DistillClient.makeHTTPClient(connections: workers + 2)
        var summary: JSONValue = ["result": "fail"]
        var daemon: Daemon?
        var simulator: TeacherSim?
        do {
            simulator = try await TeacherSim.start(options, in: work)
            daemon = try await Daemon(
                options, in: work, dataDirectory: work.appendingPathComponent("data").path, teacherURL: simulator!.url,
                environment: [
                    "DISTILL_DISTILL_INTERVAL_SECONDS": "2",
                    "DISTILL_DISTILL_MIN_ROWS": String(options.minRows),
                    "DISTILL_DISTILL_MIN_NEW_ROWS": String(minNewRows),
                    // A bounded training window, and a cache the warm-up fills: in steady state,
                    // memory has no reason to grow.
                    "DISTILL_DISTILL_MAX_ROWS": "3000",
                    "DISTILL_CACHE_MAX_ENTRIES": "1000",
                    // HNSW (not the flat scan) from 256 entries: eviction exercises deletion with repair.
                    "DISTILL_INDEX_FLAT_UNTIL": "256",
                    "DISTILL_CACHE_SNAPSHOT_INTERVAL_SECONDS": "30",
                ]
            ).start()
            summary = try await soak(daemon!, http: http, build: build)
        } catch {
            summary = ["result": "fail", "failure": .string("\(error)")]
        }
        if let daemon, daemon.isRunning { _ = await daemon.kill() }
        if let simulator { await BenchProcesses.stop(simulator.process) }
        try? await http.shutdown()
        if case .object(var members) = summary {
            members["work_directory"] = options.keep ? .string(work.path) : .null
            summary = .object(members)
        }
        if summary["result"] != "pass", let daemon { print("distilld's last log lines:\n\(daemon.stderrTail())") }
        if !options.keep { try? FileManager.default.removeItem(at: work) }

        let failures = summary["failures"]?.arrayValue?.compactMap(\.stringValue) ?? [summary["failure"]?.stringValue ?? ""]
        let checks = summary["checks"] ?? ["passed": 0, "failed": 1]
        try options.report(
            summary,
            verdict: [
                summary["result"] == "pass"
                    ? "soak: PASS: \(summary["requests"]?.intValue ?? 0) requests in \(summary["seconds"]?.doubleValue ?? 0) s, 0 errors"
                    : "soak: FAIL:\n" + failures.joined(separator: "\n"),
                "soak: \(checks["passed"]?.intValue ?? 0) passed, \(checks["failed"]?.intValue ?? 0) failed",
            ])
    }

    private func soak(_ daemon: Daemon, http: HTTPClient, build: String) async throws -> JSONValue {
        let workload = Workload(
            try Query.banking77(options), mix: [(.repeat, 0.55), (.new, 0.3), (.refresh, 0.15)], streamShare: 0.25, hotSet: 600)
        let warmup = Tally()
        let started = ContinuousClock.now
        Reliability.log("warm-up: teaching until the teacher has answered \(options.minRows + 200) queries, then waiting for the first student")
        await teach(daemon, workload, count: options.minRows + 200, workers: workers, seed: options.seed, tally: warmup, http: http)
        guard warmup.counts.errorCount == 0 else {
            throw ReliabilityFailure("\(warmup.counts.errorCount) errors during warm-up, e.g. \(warmup.counts.errors.prefix(3))")
        }
        let promoted = try await Reliability.awaitPromotion(daemon, timeout: .seconds(300))
        Reliability.log(
            "warm-up done in \(Int(Reliability.seconds(.now - started))) s: \(warmup.counts.requests) requests, student version \(promoted.version.map(String.init) ?? "?")"
        )

        let tally = Tally()
        workload.startPacing(over: .seconds(seconds))
        let soakStart = ContinuousClock.now
        let deadline = soakStart + .seconds(seconds)
        var samples: [[String: JSONValue]] = []
        print(Self.header)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<workers {
                group.addTask {
                    var random = SplitMix64(seed: options.seed &* 7919 &+ UInt64(index))
                    while ContinuousClock.now < deadline, daemon.isRunning {
                        guard let request = workload.pick(&random) else { continue }
                        let reply = await LoadReply.ask(
                            daemon.client(http), request.query.text, stream: request.stream, headers: request.headers)
                        tally.add(request.kind, reply)
                        if !reply.ok {
                            tally.error("\(request.kind) \(request.query.text.debugDescription) stream=\(request.stream): \(reply)")
                        } else if reply.source == .teacher, request.kind == .new {
                            workload.learned(request.query)
                        }
                    }
                }
            }
            // Samples at 0, every --sample-seconds, and at the end.
            var next = soakStart
            while daemon.isRunning {
                let now = ContinuousClock.now
                if now >= next || now >= deadline {
                    var sample = try daemon.sample()
                    let counts = tally.counts
                    sample["t"] = Reliability.rounded(Reliability.seconds(now - soakStart))
                    (sample["requests"], sample["errors"]) = (.int(counts.requests), .int(counts.errorCount))
                    samples.append(sample)
                    print(Self.row(sample))
                    next += .seconds(sampleSeconds)
                }
                if now >= deadline { break }
                try await Task.sleep(until: min(next, deadline))
            }
            try await group.waitForAll()
        }

        let crashed = !daemon.isRunning
        let exitStatus = await daemon.stop(grace: .seconds(60))
        let integrity = try StoreCheck.integrity(of: daemon.database)
        let elapsed = Reliability.seconds(.now - soakStart)
        let counts = tally.counts

        // The sample at 0 precedes the load; a leak raises the floor under load, so that is the floor compared.
        func value(_ sample: [String: JSONValue], _ key: String) -> Double { sample[key]?.doubleValue ?? 0 }
        let firstHalf = samples.filter { value($0, "t") > 0 && value($0, "t") < seconds / 2 }
        let secondHalf = samples.filter { value($0, "t") >= seconds / 2 }
        let rssSlope = Reliability.slope(secondHalf.map { (value($0, "t") / 60, value($0, "rss_kib") / 1024) })
        let fdSlope = Reliability.slope(secondHalf.map { (value($0, "t") / 60, value($0, "fds")) })
        func floorRise(_ key: String) -> Double {
            guard !firstHalf.isEmpty, !secondHalf.isEmpty else { return 0 }
            return secondHalf.map { value($0, key) }.min()! - firstHalf.map { value($0, key) }.min()!
        }
        let rssGrowing = rssSlope > rssSlopeMib && floorRise("rss_kib") > 16 * 1024
        let fdsGrowing = fdSlope > self.fdSlope && floorRise("fds") > 8

        var checks: [(passed: Bool, failure: String)] = [
            (!crashed, "distilld died during the soak (exit status \(exitStatus)):\n\(daemon.stderrTail())"),
            (crashed || exitStatus == 0, "distilld exited \(exitStatus) on SIGTERM after the soak, not 0"),
            (counts.errorCount == 0, "\(counts.errorCount) failed requests, e.g.:\n  " + counts.errors.prefix(10).joined(separator: "\n  ")),
            (integrity == ["ok"], "PRAGMA integrity_check after the soak: \(integrity.prefix(5))"),
            (!rssGrowing, String(format: "RSS keeps growing: %.2f MiB/min over the second half (limit %g), its floor rose %.1f MiB", rssSlope, rssSlopeMib, floorRise("rss_kib") / 1024)),
            (!fdsGrowing, String(format: "open descriptors keep growing: %.2f/min over the second half (limit %g), their floor rose %.0f", fdSlope, self.fdSlope, floorRise("fds"))),
            (samples.count >= 3, "only \(samples.count) samples: too few to judge growth"),
            (counts.streams > 0, "the workload sent no stream"),
        ]
        for source in DistillSource.allCases {
            checks.append((counts.bySource[source.rawValue, default: 0] > 0, "the workload got no answer from the \(source.rawValue): \(counts.bySource)"))
        }
        let failures = checks.filter { !$0.passed }.map(\.failure)

        let latencies = counts.latencies.sorted()
        func percentile(_ q: Double) -> JSONValue {
            latencies.isEmpty ? .null : Reliability.rounded(1000 * latencies[min(latencies.count - 1, Int(q * Double(latencies.count)))])
        }
        func range(_ key: String, max: Bool = true) -> JSONValue {
            guard let first = samples.first?[key], let last = samples.last?[key] else { return .null }
            var range: [String: JSONValue] = ["start": first, "end": last]
            if max { range["max"] = .number(samples.map { value($0, key) }.max()!) }
            return .object(range)
        }
        let versions = crashed
            ? [:]
            : try StoreCheck.read(daemon.database) { db in
                try Row.fetchAll(db, sql: "SELECT status, count(*) AS n FROM student_versions GROUP BY status")
                    .reduce(into: [String: Int]()) { counts, row in counts[row["status"] as String] = row["n"] as Int }
            }
        return [
            "result": failures.isEmpty ? "pass" : "fail",
            "failures": .array(failures.map { .string($0) }),
            "checks": ["passed": .int(checks.count - failures.count), "failed": .int(failures.count)],
            "date": .string(Date().formatted(.iso8601.year().month().day())),
            "machine": .string(ReplayBenchmark.machine()),
            "command": .string((["distill-bench"] + CommandLine.arguments.dropFirst()).joined(separator: " ")),
            "build": .string(build),
            "seconds": Reliability.rounded(elapsed),
            "workers": .int(workers),
            "seed": .integer(Int64(bitPattern: options.seed)),
            "warmup_requests": .int(warmup.counts.requests),
            "requests": .int(counts.requests),
            "requests_per_second": elapsed > 0 ? Reliability.rounded(Double(counts.requests) / elapsed) : 0,
            "errors": .int(counts.errorCount),
            "by_source": .counts(counts.bySource),
            "by_kind": .counts(counts.byKind),
            "streams": .int(counts.streams),
            "latency_ms": ["p50": percentile(0.5), "p99": percentile(0.99), "max": percentile(1)],
            "student_versions": .counts(versions),
            "rss_kib": range("rss_kib"),
            "fds": range("fds"),
            "sqlite_bytes": range("sqlite_bytes", max: false),
            "rss_slope_mib_per_min": Reliability.rounded(rssSlope, 3),
            "fd_slope_per_min": Reliability.rounded(fdSlope, 3),
            "rss_floor_rise_mib": Reliability.rounded(floorRise("rss_kib") / 1024),
            "fd_floor_rise": .number(floorRise("fds")),
            "integrity_check": integrity == ["ok"] ? "ok" : .array(integrity.prefix(5).map { .string($0) }),
            "shutdown_exit_status": .int(Int(exitStatus)),
            "samples": .array(samples.map { .object($0) }),
        ]
    }

    private static let header = ["t (s)".leftPadded(7), "requests".leftPadded(9), "errors".leftPadded(7), "RSS (MiB)".leftPadded(10),
                                 "anon".leftPadded(7), "fds".leftPadded(5), "SQLite (MiB)".leftPadded(13)].joined(separator: " ")

    private static func row(_ sample: [String: JSONValue]) -> String {
        func value(_ key: String) -> Double { sample[key]?.doubleValue ?? 0 }
        return [
            String(format: "%7.0f", value("t")), String(format: "%9.0f", value("requests")), String(format: "%7.0f", value("errors")),
            String(format: "%10.1f", value("rss_kib") / 1024), String(format: "%7.1f", value("rss_anon_kib") / 1024),
            String(format: "%5.0f", value("fds")), String(format: "%13.1f", value("sqlite_bytes") / 1_048_576),
        ].joined(separator: " ")
    }
}
