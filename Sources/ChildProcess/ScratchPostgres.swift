import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A PostgreSQL server of the tests' own: `initdb` into a scratch directory, then `postgres` on a
/// free loopback port, password authentication over TCP. PostgreSQL refuses to run as root, so a
/// root process (CI) runs it as the `postgres` system user that Debian's package creates.
public final class ScratchPostgres: Sendable {
    public static let user = "distill"
    /// The scratch server's password: what the store reads from the environment or a file.
    public static let password = "scratch-\(UInt64.random(in: 0...UInt64.max))"

    public let port: Int
    public let directory: URL
    let owner: [String]
    let binDirectory: URL
    private let server = Mutex<ChildProcess?>(nil)

    /// The directory of Debian's PostgreSQL server programs (the newest installed), if any.
    public static let binDirectory: URL? = {
        let root = "/usr/lib/postgresql"
        let versions = ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []).compactMap(Int.init).sorted()
        return versions.reversed().map { URL(fileURLWithPath: "\(root)/\($0)/bin") }
            .first { FileManager.default.isExecutableFile(atPath: $0.appendingPathComponent("postgres").path) }
    }()

    public static let missingMessage = "no PostgreSQL server programs under /usr/lib/postgresql (scripts/bootstrap installs postgresql-15)"

    /// Creates the cluster and starts the server; returns once it accepts connections (at most
    /// `deadline`), or fails with the end of its log.
    public static func start(deadline: Duration = .seconds(120)) async throws -> ScratchPostgres {
        guard let binDirectory else { throw ChildProcessError(description: missingMessage) }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("distill-pg-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let passwordFile = directory.appendingPathComponent("password")
        try Data(password.utf8).write(to: passwordFile)
        let owner = try runAsOwner(directory)
        try run(
            binDirectory.appendingPathComponent("initdb"), owner: owner,
            arguments: [
                "-D", directory.appendingPathComponent("data").path, "-U", user, "--pwfile=\(passwordFile.path)",
                "--auth-host=scram-sha-256", "--auth-local=trust", "--no-locale", "-E", "UTF8", "--no-sync",
            ])
        let scratch = ScratchPostgres(
            port: try freeLoopbackPort(), directory: directory, owner: owner, binDirectory: binDirectory)
        try await scratch.launch(deadline: deadline)
        return scratch
    }

    private init(port: Int, directory: URL, owner: [String], binDirectory: URL) {
        self.port = port
        self.directory = directory
        self.owner = owner
        self.binDirectory = binDirectory
    }

    /// Starts `postgres` on the cluster; returns once it accepts connections.
    private func launch(deadline: Duration = .seconds(120)) async throws {
        // The server's log goes to stdout (2>&1), where ChildProcess reads its readiness line.
        let command = owner + [
            binDirectory.appendingPathComponent("postgres").path, "-D", directory.appendingPathComponent("data").path,
            "-p", String(port), "-k", directory.path, "-c", "listen_addresses=127.0.0.1",
            // A scratch server: losing it in a power cut loses nothing.
            "-c", "fsync=off", "-c", "full_page_writes=off", "-c", "max_connections=200",
        ]
        let server = try ChildProcess(
            executable: URL(fileURLWithPath: "/bin/sh"), arguments: ["-c", "exec \"$@\" 2>&1", "sh"] + command,
            environment: ["PATH": "/usr/bin:/bin", "LANG": "C"], directory: directory,
            stderrPath: directory.appendingPathComponent("sh.stderr").path)
        Self.stopAtExit(server.pid, directory: directory)
        self.server.withLock { $0 = server }
        try await withDeadline(deadline, what: "PostgreSQL to accept connections") {
            _ = try await server.line(containing: "database system is ready to accept connections")
        }
    }

    /// Starts the stopped server again, on the same port and data.
    public func restart() async throws {
        try await launch()
    }

    /// Creates a new, empty database; its `postgres://` URL (no password in it).
    public func createDatabase() throws -> String {
        let name = "t_\(UUID().uuidString.prefix(12).lowercased().replacingOccurrences(of: "-", with: ""))"
        try Self.run(
            binDirectory.appendingPathComponent("createdb"), owner: [],
            arguments: ["-h", "127.0.0.1", "-p", String(port), "-U", Self.user, name], environment: ["PGPASSWORD": Self.password])
        return "postgres://\(Self.user)@127.0.0.1:\(port)/\(name)"
    }

    /// Stops the server (fast shutdown) and waits for it to exit.
    public func stop() async {
        guard let server = server.withLock({ $0 }) else { return }
        server.signal(SIGINT)
        _ = await server.exitStatus()
        // Its pid may be another process's from now on.
        Self.exitHook.withLock { _ in Self.running.removeAll { $0 == server.pid } }
    }

    /// The command prefix that runs a program as the owner of `directory`: as `postgres` (which
    /// becomes its owner) when this process is root, else as this process's user.
    private static func runAsOwner(_ directory: URL) throws -> [String] {
        guard getuid() == 0 else { return [] }
        guard let account = getpwnam("postgres") else {
            throw ChildProcessError(description: "running as root, and there is no postgres user to run PostgreSQL as")
        }
        for path in [directory.path, directory.appendingPathComponent("password").path] {
            guard chown(path, account.pointee.pw_uid, account.pointee.pw_gid) == 0 else {
                throw ChildProcessError(description: "cannot hand \(path) to the postgres user: \(String(cString: strerror(errno)))")
            }
        }
        // setpriv execs the program itself (no process in between): signals reach the server.
        return ["/usr/bin/setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--"]
    }

    private static func run(_ program: URL, owner: [String], arguments: [String], environment: [String: String] = [:]) throws {
        let process = Process()
        let command = owner + [program.path] + arguments
        process.executableURL = URL(fileURLWithPath: command[0])
        process.arguments = Array(command.dropFirst())
        process.environment = ["PATH": "/usr/bin:/bin", "LANG": "C"].merging(environment) { $1 }
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw ChildProcessError(description: "\(program.lastPathComponent) failed (\(process.terminationStatus)):\n\(text)")
        }
    }

    /// A port nothing listens on now (the kernel's pick for port 0).
    private static func freeLoopbackPort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound else { throw ChildProcessError(description: "no free loopback port: \(String(cString: strerror(errno)))") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// The servers to stop, and their directories to remove, when the test process exits (statics
    /// are never deinitialized).
    nonisolated(unsafe) private static var running: [pid_t] = []
    nonisolated(unsafe) private static var directories: Set<URL> = []
    private static let exitHook = Mutex<Bool>(false)

    private static func stopAtExit(_ pid: pid_t, directory: URL) {
        exitHook.withLock { registered in
            running.append(pid)
            directories.insert(directory)
            if !registered {
                atexit {
                    // Immediate shutdown: the postmaster stops its backends and exits.
                    for pid in ScratchPostgres.running { kill(pid, SIGQUIT) }
                    for directory in ScratchPostgres.directories { try? FileManager.default.removeItem(at: directory) }
                }
                registered = true
            }
        }
    }
}

/// Runs `body`, failing if it has not finished within `deadline`.
public func withDeadline<T: Sendable>(
    _ deadline: Duration, what: String, _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: deadline)
            return nil
        }
        defer { group.cancelAll() }
        guard let value = try await group.next()! else {
            throw ChildProcessError(description: "gave up waiting for \(what) after \(deadline)")
        }
        return value
    }
}

extension ScratchPostgres {
    /// The test process's shared server, started on first use (each test takes a database of its
    /// own); a test that stops its server starts one of its own instead.
    public static func shared() async throws -> ScratchPostgres {
        try await SharedServer.instance.server()
    }
}

private actor SharedServer {
    static let instance = SharedServer()
    private var starting: Task<ScratchPostgres, any Error>?

    func server() async throws -> ScratchPostgres {
        if let starting { return try await starting.value }
        let task = Task { try await ScratchPostgres.start() }
        starting = task
        return try await task.value
    }
}
