import DistillAPI
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// What an operator sees when distilld cannot start: exit 78 (EX_CONFIG) and one line for a
/// configuration mistake, and a listener's address when it cannot bind.
@Suite struct StartupEndToEndTests {
    static func directory() throws -> URL {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("distill-startup-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        return directory
    }

    /// `distilld --check-config` with `arguments` and `environment` over the model directory.
    func checkConfig(_ arguments: [String], environment: [String: String] = [:], in directory: URL) async throws
        -> (status: Int32, stdout: String, stderr: String)
    {
        try await runToCompletion(
            "distilld", arguments + ["--check-config"],
            environment: ["DISTILL_EMBEDDING_MODEL_DIR": EndToEnd.modelDirectory].merging(environment) { $1 }, in: directory)
    }

    @Test func aGoodConfigurationIsPrintedAndAccepted() async throws {
        let result = try await checkConfig([], in: try Self.directory())
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("log.format: text\n") && result.stdout.hasSuffix("configuration ok\n"))
        #expect(result.stderr.isEmpty)
    }

    @Test func eachMistakeIsOneLineNamingItsSourceAndExit78() async throws {
        let directory = try Self.directory()
        func file(_ name: String, _ yaml: String) throws -> String {
            let path = directory.appendingPathComponent(name).path
            try Data(yaml.utf8).write(to: URL(fileURLWithPath: path))
            return path
        }
        let section = try file("section.yaml", "cache: 5\n")
        let empty = try file("empty.yaml", "# nothing yet\n")
        let badValue = try file("value.yaml", "teacher:\n  max_attempts: abc\n")
        let missingModel = directory.appendingPathComponent("no-model").path
        let cases: [(arguments: [String], environment: [String: String], line: String)] = [
            (["--config", "/nonexistent/distilld.yaml"], [:],
             "cannot read the config file /nonexistent/distilld.yaml: no such file or directory"),
            (["--config", section], [:], "\(section): cache must be a section of keys (e.g. cache.enabled); got \"5\""),
            (["--config", empty], [:],
             "\(empty): the file sets nothing; name at least one setting, or start distilld without --config for the defaults"),
            (["--config", badValue], [:], "\(badValue): teacher.max_attempts must be an integer from 1 to 10; got \"abc\""),
            (["--config", badValue], ["DISTILL_TEACHER_MAX_ATTEMPTS": "11"],
             "DISTILL_TEACHER_MAX_ATTEMPTS: teacher.max_attempts must be an integer from 1 to 10; got \"11\""),
            ([], ["DISTILL_TEACHER_MAX_ATEMPTS": "3"],
             "unknown environment variable DISTILL_TEACHER_MAX_ATEMPTS (did you mean DISTILL_TEACHER_MAX_ATTEMPTS?): DISTILL_ variables must name a config key (docs/operations.md)"),
            (["--teacher-url", "localhost:9090"], [:],
             "command line: teacher.base_url must be an http:// or https:// URL; got \"localhost:9090\""),
            ([], ["DISTILL_EMBEDDING_MODEL_DIR": missingModel],
             "DISTILL_EMBEDDING_MODEL_DIR: embedding.model_dir must be a model directory with config.json, vocab.txt and model.safetensors (run scripts/bootstrap); missing: config.json, vocab.txt, model.safetensors; got \"\(missingModel)\""),
        ]
        for (arguments, environment, line) in cases {
            let result = try await checkConfig(arguments, environment: environment, in: directory)
            #expect(result.status == 78, "\(arguments) \(environment)")
            #expect(result.stderr == "distilld: invalid configuration: \(line)\n")
            #expect(result.stdout.isEmpty)
        }
    }

    /// A port another process holds: distilld names the address, in one clean record (here the
    /// JSON log format's), and exits 1.
    @Test func aPortInUseIsNamed() async throws {
        let holder = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(holder) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(holder, $0, length) == 0 && listen(holder, 1) == 0 && getsockname(holder, $0, &length) == 0
            }
        }
        try #require(bound)
        let port = Int(UInt16(bigEndian: address.sin_port))

        let directory = try Self.directory()
        let result = try await runToCompletion(
            "distilld",
            ["--http", "127.0.0.1:\(port)", "--socket", "off", "--data-dir", directory.appendingPathComponent("data").path,
             "--log-format", "json"],
            environment: ["DISTILL_CACHE_ENABLED": "false", "DISTILL_STUDENT_ENABLED": "false"], in: directory)
        #expect(result.status == 1)
        let records = try result.stderr.split(separator: "\n").map { try JSONValue.parse(Data($0.utf8)) }
        let last = try #require(records.last)
        #expect(last["level"] == "critical")
        #expect(last["message"] == .string("cannot listen on http://127.0.0.1:\(port): address already in use"))
        #expect(!result.stdout.contains("listening on http://"))
    }
}
