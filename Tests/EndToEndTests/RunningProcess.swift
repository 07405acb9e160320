import Foundation
import Synchronization

/// A child process of a test: its stdout is read as it comes (to learn when it is ready), its
/// stderr goes to a file kept for a failing test's post-mortem.
final class RunningProcess: Sendable {
    let name: String
    let stderrPath: String
    private let process: Process
    private let state = State()

    /// What the pipe and termination handlers share with the test.
    private final class State: Sendable {
        let output = Mutex<(text: String, closed: Bool, waiters: [CheckedContinuation<Void, Never>])>(("", false, []))
        let exit = Mutex<(status: Int32?, waiters: [CheckedContinuation<Int32, Never>])>((nil, []))
    }

    /// The directory of the built executables: `DISTILL_BIN_DIR`, else `.build/debug`.
    static let binDirectory: URL = {
        if let dir = ProcessInfo.processInfo.environment["DISTILL_BIN_DIR"] { return URL(fileURLWithPath: dir) }
        return packageRoot.appendingPathComponent(".build/debug")
    }()

    static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    init(_ executable: String, _ arguments: [String], environment: [String: String] = [:], in directory: URL) throws {
        name = executable
        stderrPath = directory.appendingPathComponent("\(executable)-\(UUID().uuidString.prefix(8)).stderr").path
        _ = FileManager.default.createFile(atPath: stderrPath, contents: nil)
        process = Process()
        process.executableURL = Self.binDirectory.appendingPathComponent(executable)
        process.arguments = arguments
        process.currentDirectoryURL = directory
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
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
            let waiters = state.exit.withLock { state in
                state.status = process.terminationStatus
                defer { state.waiters = [] }
                return state.waiters
            }
            waiters.forEach { $0.resume(returning: process.terminationStatus) }
        }
        try process.run()
        reader.start()
    }

    /// A child left running by a failing test must not outlive it.
    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }

    var pid: Int32 { process.processIdentifier }

    /// The first line of stdout containing `text`, once it has been printed. Fails if stdout
    /// closes (the process died) first.
    func line(containing text: String) async throws -> String {
        let matches = { (output: String) in output.split(separator: "\n").first { $0.contains(text) }.map(String.init) }
        let (output, _) = await awaitOutput { matches($0) != nil }
        guard let line = matches(output) else {
            throw ProcessFailure(message: "\(name) exited before printing '\(text)'; stderr: \(stderr)")
        }
        return line
    }

    /// Everything the process printed on stdout, once it has closed stdout.
    func fullOutput() async -> String {
        await awaitOutput { _ in false }.text
    }

    /// Waits until stdout so far satisfies `done`, or stdout closes.
    private func awaitOutput(until done: (String) -> Bool) async -> (text: String, closed: Bool) {
        while true {
            let state = self.state.output.withLock { ($0.text, $0.closed) }
            if state.1 || done(state.0) { return state }
            await withCheckedContinuation { continuation in
                let resumeNow = self.state.output.withLock { current in
                    // Output may have arrived since the check above: only wait for more if not.
                    guard current.text == state.0, !current.closed else { return true }
                    current.waiters.append(continuation)
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        }
    }

    /// The address a listener announced as `... listening on ADDRESS`.
    func address(_ prefix: String) async throws -> String {
        let line = try await line(containing: "listening on \(prefix)")
        let address = line.components(separatedBy: "listening on ").last!
        return String(address.split(separator: " ").first!)
    }

    func signal(_ number: Int32) {
        kill(process.processIdentifier, number)
    }

    /// Waits for the process to end and returns its exit status.
    func exitStatus() async -> Int32 {
        await withCheckedContinuation { continuation in
            let status = state.exit.withLock { state -> Int32? in
                if state.status == nil { state.waiters.append(continuation) }
                return state.status
            }
            if let status { continuation.resume(returning: status) }
        }
    }

    var stderr: String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }

    /// Stops the process if it still runs (tests call this on every path).
    func stop() async {
        if process.isRunning { signal(SIGKILL) }
        _ = await exitStatus()
    }
}

struct ProcessFailure: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}

/// Runs a command to completion and returns its exit status and stdout.
func runToCompletion(
    _ executable: String, _ arguments: [String], environment: [String: String] = [:], in directory: URL
) async throws -> (status: Int32, stdout: String) {
    let process = try RunningProcess(executable, arguments, environment: environment, in: directory)
    let stdout = await process.fullOutput()
    return (await process.exitStatus(), stdout)
}
