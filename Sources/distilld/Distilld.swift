import ArgumentParser
import DistillAPI
import DistillServer
import Foundation
import Logging

#if canImport(Glibc)
import Glibc
#endif

@main
struct Distilld: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "distilld",
        abstract: "Answers OpenAI chat-completion requests from a semantic cache, a distilled student, or the teacher.",
        discussion: """
            Every config key can also be set in the environment as DISTILL_<SECTION>_<KEY>
            (e.g. DISTILL_TEACHER_BASE_URL); flags win over the environment, which wins over the file.
            Stops gracefully on SIGTERM or SIGINT.
            """,
        version: DistillVersion.current
    )

    @Option(help: "YAML config file (default: built-in defaults, as documented in config/distilld.yaml).")
    var config: String?
    @Option(help: "TCP listener as HOST:PORT, or \"off\" (server.http).") var http: String?
    @Option(help: "Unix socket path, or \"off\" (server.socket).") var socket: String?
    @Option(name: .customLong("data-dir"), help: "Where the store lives (store.data_dir).") var dataDir: String?
    @Option(name: .customLong("teacher-url"), help: "The teacher's OpenAI-compatible base URL (teacher.base_url).")
    var teacherURL: String?
    @Option(name: .customLong("log-format"), help: "text, or json: one JSON object per line (log.format).")
    var logFormat: String?
    @Flag(name: .customLong("check-config"), help: "Validate the configuration (and that the model directory is there), print it, and exit.")
    var checkConfig = false

    func run() async throws {
        // Everything the daemon creates (store, socket, lock) is its owner's alone.
        umask(0o077)
        let environment = ProcessInfo.processInfo.environment
        // Two malloc arenas keep RSS from creeping (Allocator.limitArenas); MALLOC_ARENA_MAX in the
        // environment still decides.
        if environment["MALLOC_ARENA_MAX"] == nil { Allocator.limitArenas(to: 2) }
        var overrides: [String: String] = [:]
        overrides["server.http"] = http
        overrides["server.socket"] = socket
        overrides["store.data_dir"] = dataDir
        overrides["teacher.base_url"] = teacherURL
        overrides["log.format"] = logFormat

        let loaded: DistillConfig.Loaded
        do {
            loaded = try await DistillConfig.load(
                file: config, environment: environment, overrides: overrides, checkFiles: true)
        } catch {
            FileHandle.standardError.write(Data("distilld: invalid configuration: \(error)\n".utf8))
            throw ExitCode(78)  // EX_CONFIG
        }
        if checkConfig {
            for (key, value) in loaded.settings { print("\(key): \(value)") }
            print("configuration ok")
            return
        }

        let log = loaded.config.log
        LoggingSystem.bootstrap { label in makeLogHandler(label: label, log: log) }
        let logger = Logger(label: "distilld")
        logger.info("starting", metadata: ["distill.version": "\(DistillVersion.current)", "distill.pid": "\(getpid())"])
        do {
            try await Daemon.run(config: loaded.config, environment: environment, logger: logger)
        } catch {
            logger.critical("\(error)")
            throw ExitCode.failure
        }
        logger.info("stopped")
    }
}
