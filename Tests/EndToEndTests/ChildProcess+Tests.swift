import ChildProcess
import Foundation

extension ChildProcess {
    /// The directory of the built executables: `DISTILL_BIN_DIR`, else `.build/debug`.
    static let binDirectory: URL = {
        if let dir = ProcessInfo.processInfo.environment["DISTILL_BIN_DIR"] { return URL(fileURLWithPath: dir) }
        return packageRoot.appendingPathComponent(".build/debug")
    }()

    static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// Starts a built executable in `directory`, with the test's environment and `environment` over
    /// it; its stderr goes to a file there, kept for a failing test's post-mortem.
    convenience init(_ executable: String, _ arguments: [String], environment: [String: String] = [:], in directory: URL) throws {
        try self.init(
            executable: Self.binDirectory.appendingPathComponent(executable), arguments: arguments,
            environment: ProcessInfo.processInfo.environment.merging(environment) { $1 }, directory: directory,
            stderrPath: directory.appendingPathComponent("\(executable)-\(UUID().uuidString.prefix(8)).stderr").path)
    }
}

/// Runs a command to completion and returns its exit status, stdout and stderr.
func runToCompletion(
    _ executable: String, _ arguments: [String], environment: [String: String] = [:], in directory: URL
) async throws -> (status: Int32, stdout: String, stderr: String) {
    let process = try ChildProcess(executable, arguments, environment: environment, in: directory)
    let stdout = await process.fullOutput()
    return (await process.exitStatus(), stdout, process.stderr)
}
