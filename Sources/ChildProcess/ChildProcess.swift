import Foundation
import Synchronization

/// A process started by the end-to-end tests or the replay benchmark (distilld, teacher-sim,
/// cachectl): its stdout is read as it comes, to learn when it is ready and where it listens; its
/// stderr goes to a file kept for a post-mortem.
public final class ChildProcess: Sendable {
    public let name: String
    public let stderrPath: String
    private let process: Process
    private let state = State()

    /// What the stdout reader and the termination handler share with the caller.
    private final class State: Sendable {
        let output = Mutex<(text: String, closed: Bool, waiters: [CheckedContinuation<Void, Never>])>(("", false, []))
        let exit = Mutex<(status: Int32?, waiters: [CheckedContinuation<Int32, Never>])>((nil, []))
    }

    /// Starts `executable` in `directory` with exactly `environment`, its stderr written to `stderrPath`.
    public init(executable: URL, arguments: [String], environment: [String: String], directory: URL, stderrPath: String) throws {
        name = executable.lastPathComponent
        self.stderrPath = stderrPath
        _ = FileManager.default.createFile(atPath: stderrPath, contents: nil)
        process = Process()
        process.executableURL = executable
        process.arguments = arguments
        process.currentDirectoryURL = directory
        process.environment = environment
        let stdout = Pipe()
        process.standardOutput = stdout
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: stderrPath))
        // A thread of its own reads stdout to its end (blocking reads: readabilityHandler can miss
        // the end of the stream on Linux).
        let reader = Thread { [state] in
            let handle = stdout.fileHandleForReading
            while true {
                let data = handle.availableData
                let waiters = state.output.withLock { output in
                    if data.isEmpty { output.closed = true } else { output.text += String(decoding: data, as: UTF8.self) }
                    defer { output.waiters = [] }
                    return output.waiters
                }
                waiters.forEach { $0.resume() }
                if data.isEmpty { return }
            }
        }
        process.terminationHandler = { [state] process in
            let waiters = state.exit.withLock { exit in
                exit.status = process.terminationStatus
                defer { exit.waiters = [] }
                return exit.waiters
            }
            waiters.forEach { $0.resume(returning: process.terminationStatus) }
        }
        try process.run()
        reader.start()
    }

    /// A child left running by a failing caller must not outlive it.
    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }

    public var pid: Int32 { process.processIdentifier }

    public var isRunning: Bool { state.exit.withLock { $0.status == nil } }

    /// The first line of stdout containing `text`, once it has been printed. Fails if stdout
    /// closes (the process died) first.
    public func line(containing text: String) async throws -> String {
        let matches = { (output: String) in output.split(separator: "\n").first { $0.contains(text) }.map(String.init) }
        let (output, _) = await awaitOutput { matches($0) != nil }
        guard let line = matches(output) else {
            throw ChildProcessError(
                description: "\(name) exited before printing '\(text)'; the end of its stderr (\(stderrPath)):\n\(stderrTail())")
        }
        return line
    }

    /// The address a listener announced as `... listening on PREFIX...`.
    public func address(_ prefix: String) async throws -> String {
        let line = try await line(containing: "listening on \(prefix)")
        let address = line.components(separatedBy: "listening on ").last!
        return String(address.split(separator: " ").first!)
    }

    /// Everything the process printed on stdout, once it has closed stdout.
    public func fullOutput() async -> String {
        await awaitOutput { _ in false }.text
    }

    /// Waits until stdout so far satisfies `done`, or stdout closes.
    private func awaitOutput(until done: (String) -> Bool) async -> (text: String, closed: Bool) {
        while true {
            let seen = state.output.withLock { ($0.text, $0.closed) }
            if seen.1 || done(seen.0) { return seen }
            await withCheckedContinuation { continuation in
                let resumeNow = state.output.withLock { current in
                    // Output may have arrived since the check above: only wait for more if not.
                    guard current.text == seen.0, !current.closed else { return true }
                    current.waiters.append(continuation)
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        }
    }

    public func signal(_ number: Int32) {
        kill(process.processIdentifier, number)
    }

    /// Waits for the process to end and returns its exit status.
    public func exitStatus() async -> Int32 {
        await withCheckedContinuation { continuation in
            let status = state.exit.withLock { exit -> Int32? in
                if exit.status == nil { exit.waiters.append(continuation) }
                return exit.status
            }
            if let status { continuation.resume(returning: status) }
        }
    }

    public var stderr: String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }

    public func stderrTail(lines: Int = 20) -> String {
        stderr.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines).joined(separator: "\n")
    }

    /// Stops the process if it still runs and returns its exit status: SIGKILL at once, or with a
    /// `grace` SIGTERM first and SIGKILL only if it has not exited by then.
    @discardableResult
    public func stop(grace: Duration = .zero) async -> Int32 {
        guard isRunning else { return await exitStatus() }
        guard grace > .zero else {
            signal(SIGKILL)
            return await exitStatus()
        }
        signal(SIGTERM)
        let pid = pid
        return await withTaskGroup(of: Int32?.self) { group in
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
    }
}

public struct ChildProcessError: Error, CustomStringConvertible {
    public var description: String
}
