import Foundation
import Testing

@testable import DistillServer
import DistillCore

@Suite struct DistillConfigTests {
    func writeConfig(_ yaml: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("distilld-\(UUID().uuidString).yaml").path
        try Data(yaml.utf8).write(to: URL(fileURLWithPath: path))
        return path
    }

    @Test func theDefaultsNeedNoFile() async throws {
        let loaded = try await DistillConfig.load(file: nil, environment: [:])
        #expect(loaded.config == DistillConfig())
        #expect(loaded.config.server.http == .init(host: "127.0.0.1", port: 8080))
        #expect(loaded.config.server.socket == "var/distilld.sock")
        #expect(loaded.warnings.isEmpty)
    }

    @Test func theShippedConfigFileIsValidAndEqualsTheDefaults() async throws {
        let shipped = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../config/distilld.yaml").standardized.path
        let loaded = try await DistillConfig.load(file: shipped, environment: [:])
        #expect(loaded.config == DistillConfig())
    }

    @Test func flagsWinOverTheEnvironmentWhichWinsOverTheFile() async throws {
        let file = try writeConfig("""
            teacher:
              max_attempts: 7
              base_url: "http://file.example/v1"
              breaker_open_seconds: 2.5
            server:
              http: "0.0.0.0:9000"
            """)
        let loaded = try await DistillConfig.load(
            file: file,
            environment: ["DISTILL_TEACHER_MAX_ATTEMPTS": "4", "DISTILL_TEACHER_BASE_URL": "http://env.example/v1"],
            overrides: ["teacher.base_url": "http://flag.example/v1"])
        #expect(loaded.config.teacher.maxAttempts == 4)
        #expect(loaded.config.teacher.baseURL == "http://flag.example/v1")
        #expect(loaded.config.teacher.breakerOpenSeconds == 2.5)
        #expect(loaded.config.server.http == .init(host: "0.0.0.0", port: 9000))
        #expect(loaded.settings.contains { $0.key == "teacher.max_attempts" && $0.value == "4" })
    }

    @Test(arguments: [
        (["DISTILL_TEACHER_MAX_ATTEMPTS": "abc"], "teacher.max_attempts", "DISTILL_TEACHER_MAX_ATTEMPTS"),
        (["DISTILL_TEACHER_MAX_ATTEMPTS": "0"], "teacher.max_attempts", "DISTILL_TEACHER_MAX_ATTEMPTS"),
        (["DISTILL_SERVER_HTTP": "localhost"], "server.http", "DISTILL_SERVER_HTTP"),
        (["DISTILL_TEACHER_BASE_URL": "ftp://x"], "teacher.base_url", "DISTILL_TEACHER_BASE_URL"),
        (["DISTILL_TEACHER_READ_TIMEOUT_SECONDS": "-1"], "teacher.read_timeout_seconds", "DISTILL_TEACHER_READ_TIMEOUT_SECONDS"),
        (["DISTILL_LOG_LEVEL": "loud"], "log.level", "DISTILL_LOG_LEVEL"),
        // τ needs 50 accepted answers from a holdout of at most half.
        (["DISTILL_DISTILL_MIN_ROWS": "99"], "distill.min_rows", "DISTILL_DISTILL_MIN_ROWS"),
        (["DISTILL_SERVER_HTTP": "off", "DISTILL_SERVER_SOCKET": "off"], "server.http", "DISTILL_SERVER_HTTP"),
        (["DISTILL_SERVER_SOCKET": String(repeating: "s", count: 120)], "server.socket", "DISTILL_SERVER_SOCKET"),
    ])
    func aBadValueNamesItsKey(environment: [String: String], key: String, variable: String) async {
        await #expect {
            _ = try await DistillConfig.load(file: nil, environment: environment)
        } throws: { error in
            guard case .invalidValue(let badKey, _, _) = error as? ConfigError else { return false }
            return badKey == key && "\(error)".contains(variable)
        }
    }

    @Test func unknownKeysInTheFileAreRefused() async throws {
        let file = try writeConfig("teacher:\n  max_atempts: 3\nserver:\n  htp: off\n")
        await #expect(throws: ConfigError.unknownKeys(["server.htp", "teacher.max_atempts"], file: file)) {
            _ = try await DistillConfig.load(file: file, environment: [:])
        }
    }

    @Test func unknownDistillVariablesAreWarnedAbout() async throws {
        let loaded = try await DistillConfig.load(file: nil, environment: ["DISTILL_TEACHER_MAX_ATEMPTS": "3", "PATH": "/bin"])
        #expect(loaded.warnings == ["ignoring environment variable DISTILL_TEACHER_MAX_ATEMPTS: it names no config key"])
    }

    @Test func aMissingFileIsAnError() async {
        await #expect {
            _ = try await DistillConfig.load(file: "/nonexistent/distilld.yaml", environment: [:])
        } throws: { error in
            "\(error)".contains("/nonexistent/distilld.yaml")
        }
    }

    @Test func theAPIKeyComesFromTheNamedVariable() async throws {
        let loaded = try await DistillConfig.load(file: nil, environment: ["DISTILL_TEACHER_API_KEY_ENV": "MY_KEY"])
        #expect(loaded.config.teacherConfiguration(environment: ["MY_KEY": "sk-1"]).apiKey == "sk-1")
        #expect(loaded.config.teacherConfiguration(environment: ["OPENAI_API_KEY": "sk-2"]).apiKey == nil)
        #expect(!loaded.settings.contains { $0.value.contains("sk-") }, "the key itself is no setting")
    }
}
