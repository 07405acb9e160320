import Foundation
import Synchronization

/// A process the replay starts (teacher-sim, distilld): its stdout is read as it comes, to learn
/// the address it listens on; its stderr goes to a log file kept beside the run's store.
final class ReplayProcess: Sendable {
    let name: String
    let logPath: String
    private let process: Process
    private let state = State()

    /// What the pipe reader and the termination handler share with the run.
    private final class State: Sendable {
        let output = Mutex<(text: String, closed: Bool, waiters: [CheckedContinuation<Void, Never>])>(("", false, []))
        let exit = Mutex<(status: Int32?, waiters: [CheckedContinuation<Int32, Never>])>((nil, []))
    }

    /// Every process started and not yet stopped, so that an interrupted run leaves none behind.
    private static let running = Mutex<[Int32: ReplayProcess]>([:])

    init(executable: URL, arguments: [String], environment: [String: String], directory: URL) throws {
        name = executable.lastPathComponent
        logPath = directory.appendingPathComponent("\(name).log").path
        guard FileManager.default.isExecutableFile(atPath: executable.path) else {
            throw ReplayError("\(executable.path) is not an executable: build it first (swift build -c release), or give --bin-dir")
        }
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        process = Process()
        process.executableURL = executable
        process.arguments = arguments
        process.currentDirectoryURL = directory
        process.environment = environment
        let stdout = Pipe()
        process.standardOutput = stdout
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        process.terminationHandler = { [state] process in
            let waiters = state.exit.withLock { state in
                state.status = process.terminationStatus
                defer { state.waiters = [] }
                return state.waiters
            }
            waiters.forEach { $0.resume(returning: process.terminationStatus) }
        }
        try process.run()
        Self.running.withLock { $0[process.processIdentifier] = self }
        // Blocking reads on a thread of their own: readabilityHandler can miss the end of the stream on Linux.
        Thread { [state] in
            let handle = stdout.fileHandleForReading
            while true {
                let data = handle.availableData
                let waiters = state.output.withLock { state in
                    if data.isEmpty { state.closed = true } else { state.text += String(decoding: data, as: UTF8.self) }
                    defer { state.waiters = [] }
                    return state.waiters
                }
                waiters.forEach { $0.resume() }
                if data.isEmpty { return }
            }
        }.start()
    }

    var isRunning: Bool { state.exit.withLock { $0.status == nil } }

    /// The address the process announces as `... listening on PREFIX...`; fails if it exits first.
    func address(_ prefix: String) async throws -> String {
        let marker = "listening on \(prefix)"
        func find(_ text: String) -> String? {
            guard let line = text.split(separator: "\n").first(where: { $0.contains(marker) }) else { return nil }
            return line.components(separatedBy: "listening on ").last!.split(separator: " ").first.map(String.init)
        }
        while true {
            let (text, closed) = state.output.withLock { ($0.text, $0.closed) }
            if let address = find(text) { return address }
            if closed {
                throw ReplayError("\(name) exited before listening; the end of its log (\(logPath)):\n\(logTail())")
            }
            await withCheckedContinuation { continuation in
                let now = state.output.withLock { state in
                    // More output may have come since the check above: wait only if none has.
                    guard state.text == text, !state.closed else { return true }
                    state.waiters.append(continuation)
                    return false
                }
                if now { continuation.resume() }
            }
        }
    }

    func logTail(lines: Int = 20) -> String {
        let text = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
        return text.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines).joined(separator: "\n")
    }

    /// SIGTERM, then SIGKILL if it has not exited after `grace`; returns the exit status.
    @discardableResult
    func stop(grace: Duration = .seconds(15)) async -> Int32 {
        let pid = process.processIdentifier
        kill(pid, SIGTERM)
        let status = await withTaskGroup(of: Int32?.self) { group in
            group.addTask { await self.exitStatus() }
            group.addTask {
                try? await Task.sleep(for: grace)
                if !Task.isCancelled { kill(pid, SIGKILL) }
                return nil
            }
            var status: Int32 = 0
            for await finished in group {
                guard let finished else { continue }
                status = finished
                group.cancelAll()
            }
            return status
        }
        Self.running.withLock { _ = $0.removeValue(forKey: pid) }
        return status
    }

    /// Runs `body`, then stops the process, whether `body` succeeded or not.
    func whileRunning<T>(_ body: () async throws -> T) async throws -> T {
        let result: T
        do {
            result = try await body()
        } catch {
            await stop()
            throw error
        }
        let status = await stop()
        if status != 0 && status != SIGTERM {
            FileHandle.standardError.write(Data("\(name) exited with status \(status); its log: \(logPath)\n".utf8))
        }
        return result
    }

    func exitStatus() async -> Int32 {
        await withCheckedContinuation { continuation in
            let status = state.exit.withLock { exit -> Int32? in
                if exit.status == nil { exit.waiters.append(continuation) }
                return exit.status
            }
            if let status { continuation.resume(returning: status) }
        }
    }

    /// Kills every process still running (an interrupted run), at once.
    static func killAll() {
        for pid in running.withLock({ Array($0.keys) }) { kill(pid, SIGKILL) }
    }
}

struct ReplayError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
