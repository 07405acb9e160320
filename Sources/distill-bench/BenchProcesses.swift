import ChildProcess
import Foundation
import Synchronization

/// The processes a benchmark starts (teacher-sim, distilld), each with its stderr in a log beside
/// the run's store; every one started and not yet stopped is known, so that an interrupted run
/// leaves none behind.
enum BenchProcesses {
    private static let running = Mutex<[Int32: ChildProcess]>([:])

    /// Starts `executable`; its stderr goes to `<log>.log` in `directory` (the executable's name by default).
    static func start(
        executable: URL, arguments: [String], environment: [String: String], directory: URL, log: String? = nil
    ) throws -> ChildProcess {
        guard FileManager.default.isExecutableFile(atPath: executable.path) else {
            throw BenchError("\(executable.path) is not an executable: build it first (swift build -c release), or give --bin-dir")
        }
        let process = try ChildProcess(
            executable: executable, arguments: arguments, environment: environment, directory: directory,
            stderrPath: directory.appendingPathComponent("\(log ?? executable.lastPathComponent).log").path)
        running.withLock { $0[process.pid] = process }
        return process
    }

    /// Runs `body`, then stops `process` (SIGTERM, and SIGKILL after 15 s), whether `body` succeeded or not.
    static func whileRunning<T>(_ process: ChildProcess, _ body: () async throws -> T) async throws -> T {
        let result: T
        do {
            result = try await body()
        } catch {
            await stop(process)
            throw error
        }
        let status = await stop(process)
        if status != 0 && status != SIGTERM {
            FileHandle.standardError.write(Data("\(process.name) exited with status \(status); its log: \(process.stderrPath)\n".utf8))
        }
        return result
    }

    /// Stops `process` if it runs (SIGTERM, then SIGKILL after `grace`); its exit status.
    @discardableResult
    static func stop(_ process: ChildProcess, grace: Duration = .seconds(15)) async -> Int32 {
        let status = await process.stop(grace: grace)
        running.withLock { _ = $0.removeValue(forKey: process.pid) }
        return status
    }

    /// Kills every process still running (an interrupted run), at once.
    static func killAll() {
        for pid in running.withLock({ Array($0.keys) }) { kill(pid, SIGKILL) }
    }

    /// On SIGINT (a user) or SIGTERM (a CI time-out), the processes the run started die with it.
    static func killAllOnInterrupt() -> [any DispatchSourceSignal] {
        [SIGINT, SIGTERM].map { number in
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            signal(number, SIG_IGN)
            source.setEventHandler {
                killAll()
                FileHandle.standardError.write(Data("\ninterrupted\n".utf8))
                Foundation.exit(128 + number)
            }
            source.resume()
            return source
        }
    }
}

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
