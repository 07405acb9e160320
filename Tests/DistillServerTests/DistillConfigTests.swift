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
        #expect(loaded.config.log.format == .text)
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
        // δ is a share strictly between 0 and 1: 0 would serve no paraphrase, 1 every one.
        (["DISTILL_CACHE_MAX_ERROR": "0"], "cache.max_error", "DISTILL_CACHE_MAX_ERROR"),
        (["DISTILL_CACHE_MAX_ERROR": "1"], "cache.max_error", "DISTILL_CACHE_MAX_ERROR"),
        (["DISTILL_CACHE_MAX_ERROR": "5%"], "cache.max_error", "DISTILL_CACHE_MAX_ERROR"),
    ])
    func aBadValueNamesItsKey(environment: [String: String], key: String, variable: String) async {
        await #expect {
            _ = try await DistillConfig.load(file: nil, environment: environment)
        } throws: { error in
            guard case .invalidValue(let badKey, _, _, let source) = error as? ConfigError else { return false }
            return badKey == key && source == .environment(variable) && "\(error)".hasPrefix("\(variable): \(key) must be")
        }
    }

    @Test func theTeacherLogRetentionIsDaysAndNeverNegative() async throws {
        let loaded = try await DistillConfig.load(file: nil, environment: ["DISTILL_STORE_TEACHER_LOG_RETENTION_DAYS": "30"])
        #expect(loaded.config.store.teacherLogRetentionDays == 30)
        await #expect(throws: ConfigError.self) {
            try await DistillConfig.load(file: nil, environment: ["DISTILL_STORE_TEACHER_LOG_RETENTION_DAYS": "-1"])
        }
    }

    @Test func unknownKeysInTheFileAreRefusedWithTheKeyMeant() async throws {
        let file = try writeConfig("teacher:\n  max_atempts: 3\nserver:\n  htp: off\n  zzz: 1\n")
        let error = ConfigError.unknownKeys(["server.htp", "server.zzz", "teacher.max_atempts"], file: file)
        await #expect(throws: error) {
            _ = try await DistillConfig.load(file: file, environment: [:])
        }
        #expect(
            "\(error)" == "\(file): unknown keys server.htp (did you mean server.http?), server.zzz, teacher.max_atempts (did you mean teacher.max_attempts?)")
    }

    /// A typo in a variable would leave the default in force: refused, as an unknown key in the file is.
    @Test func unknownDistillVariablesAreRefused() async throws {
        let environment = ["DISTILL_TEACHER_MAX_ATEMPTS": "3", "PATH": "/bin"]
        await #expect(throws: ConfigError.unknownVariables(["DISTILL_TEACHER_MAX_ATEMPTS"])) {
            _ = try await DistillConfig.load(file: nil, environment: environment)
        }
        #expect("\(ConfigError.unknownVariables(["DISTILL_TEACHER_MAX_ATEMPTS"]))".contains("did you mean DISTILL_TEACHER_MAX_ATTEMPTS?"))
        // cachectl's variable and the tests' may be in the same shell.
        _ = try await DistillConfig.load(file: nil, environment: ["DISTILL_ADMIN_URL": "http://127.0.0.1:8080", "DISTILL_BIN_DIR": "/x"])
    }

    /// Each bad value is blamed on the source whose value won: the file, the variable or the flag.
    @Test func aBadValueNamesWhereItCameFrom() async throws {
        let file = try writeConfig("teacher:\n  max_attempts: abc\n")
        let fromFile = ConfigError.invalidValue(key: "teacher.max_attempts", value: "abc", expected: "an integer from 1 to 10", source: .file(file))
        await #expect(throws: fromFile) {
            _ = try await DistillConfig.load(file: file, environment: [:])
        }
        #expect("\(fromFile)" == "\(file): teacher.max_attempts must be an integer from 1 to 10; got \"abc\"")
        // The variable wins over the file: a bad value of its own is the variable's.
        await #expect {
            _ = try await DistillConfig.load(file: file, environment: ["DISTILL_TEACHER_MAX_ATTEMPTS": "0"])
        } throws: { error in
            "\(error)" == "DISTILL_TEACHER_MAX_ATTEMPTS: teacher.max_attempts must be an integer from 1 to 10; got \"0\""
        }
        _ = try await DistillConfig.load(file: file, environment: ["DISTILL_TEACHER_MAX_ATTEMPTS": "2"])
        // And the flag wins over both.
        let url = try writeConfig("teacher:\n  base_url: \"ftp://x\"\n")
        await #expect {
            _ = try await DistillConfig.load(file: url, environment: ["DISTILL_TEACHER_BASE_URL": "gopher://y"], overrides: ["teacher.base_url": "z"])
        } throws: { error in
            "\(error)" == "command line: teacher.base_url must be an http:// or https:// URL; got \"z\""
        }
    }

    /// swift-configuration reads a value of the wrong shape as absent; the file's shape is checked first.
    @Test(arguments: [
        ("cache: 5\n", "cache", "a section of keys (e.g. cache.enabled)"),
        ("cache:\n  - 1\n", "cache", "a section of keys (e.g. cache.enabled)"),
        ("teacher:\n  max_attempts: [1, 2]\n", "teacher.max_attempts", "a single value"),
        ("log:\n  level:\n    a: 1\n", "log.level", "a single value"),
    ])
    func aValueOfTheWrongShapeIsRefused(yaml: String, key: String, expected: String) async throws {
        let file = try writeConfig(yaml)
        await #expect {
            _ = try await DistillConfig.load(file: file, environment: [:])
        } throws: { error in
            guard case .invalidValue(key, _, expected, .file(file)) = error as? ConfigError else { return false }
            return "\(error)".hasPrefix("\(file): \(key) must be \(expected)")
        }
    }

    @Test func anEmptySectionIsNoMistake() async throws {
        let loaded = try await DistillConfig.load(file: try writeConfig("cache:\nlog:\n  format: json\n"), environment: [:])
        #expect(loaded.config.cache == DistillConfig().cache)
        #expect(loaded.config.log.format == .json)
    }

    @Test(arguments: ["", "\n", "# only a comment\n", "---\n"])
    func anEmptyFileIsRefused(yaml: String) async throws {
        let file = try writeConfig(yaml)
        await #expect {
            _ = try await DistillConfig.load(file: file, environment: [:])
        } throws: { error in
            guard case .invalidFile(file, let reason) = error as? ConfigError else { return false }
            return reason.hasPrefix("the file sets nothing")
        }
    }

    @Test(arguments: [("- teacher\n", "not a list"), ("just words\n", "not just words"), ("teacher: [\n", "not valid YAML")])
    func aFileThatIsNoConfigurationIsRefused(yaml: String, reason: String) async throws {
        let file = try writeConfig(yaml)
        await #expect {
            _ = try await DistillConfig.load(file: file, environment: [:])
        } throws: { error in
            guard case .invalidFile(file, let found) = error as? ConfigError else { return false }
            return found.contains(reason) && !found.contains("\n")
        }
    }

    @Test func aMissingFileIsOneClearLine() async {
        await #expect(throws: ConfigError.unreadableFile(path: "/nonexistent/distilld.yaml", reason: "no such file or directory")) {
            _ = try await DistillConfig.load(file: "/nonexistent/distilld.yaml", environment: [:])
        }
        #expect(
            "\(ConfigError.unreadableFile(path: "/nonexistent/distilld.yaml", reason: "no such file or directory"))"
                == "cannot read the config file /nonexistent/distilld.yaml: no such file or directory")
    }

    @Test func checkingFilesRequiresTheModelDirectoryWhenSomethingEmbeds() async throws {
        let missing = FileManager.default.temporaryDirectory.appendingPathComponent("no-model-\(UUID().uuidString)").path
        await #expect {
            _ = try await DistillConfig.load(file: nil, environment: ["DISTILL_EMBEDDING_MODEL_DIR": missing], checkFiles: true)
        } throws: { error in
            guard case .invalidValue("embedding.model_dir", missing, _, .environment("DISTILL_EMBEDDING_MODEL_DIR")) = error as? ConfigError
            else { return false }
            return "\(error)".contains("missing: config.json, vocab.txt, model.safetensors")
        }
        // Unchecked, as tests load it; and nothing to check with neither cache nor students.
        _ = try await DistillConfig.load(file: nil, environment: ["DISTILL_EMBEDDING_MODEL_DIR": missing])
        _ = try await DistillConfig.load(
            file: nil,
            environment: ["DISTILL_EMBEDDING_MODEL_DIR": missing, "DISTILL_CACHE_ENABLED": "false", "DISTILL_STUDENT_ENABLED": "false"],
            checkFiles: true)
        let shipped = RoutesTests.modelDirectory.modelDir
        _ = try await DistillConfig.load(file: nil, environment: ["DISTILL_EMBEDDING_MODEL_DIR": shipped], checkFiles: true)
    }

    @Test func theLogFormatIsTextOrJSON() async throws {
        #expect(try await DistillConfig.load(file: nil, environment: [:], overrides: ["log.format": "json"]).config.log.format == .json)
        await #expect(throws: ConfigError.invalidValue(key: "log.format", value: "xml", expected: "text or json", source: .environment("DISTILL_LOG_FORMAT"))) {
            _ = try await DistillConfig.load(file: nil, environment: ["DISTILL_LOG_FORMAT": "xml"])
        }
    }

    @Test func theAPIKeyComesFromTheNamedVariable() async throws {
        let loaded = try await DistillConfig.load(file: nil, environment: ["DISTILL_TEACHER_API_KEY_ENV": "MY_KEY"])
        #expect(loaded.config.teacherConfiguration(environment: ["MY_KEY": "sk-1"]).apiKey == "sk-1")
        #expect(loaded.config.teacherConfiguration(environment: ["OPENAI_API_KEY": "sk-2"]).apiKey == nil)
        #expect(!loaded.settings.contains { $0.value.contains("sk-") }, "the key itself is no setting")
    }
}
