import Foundation
import Testing

@testable import DistillServer
import DistillCore

@Suite struct AccessConfigTests {
    static let key1 = "sk-test-0123456789abcdef"
    static let key2 = "sk-test-fedcba9876543210"
    static let token = String(repeating: "t0k3n", count: 8)

    @Test func apiKeysComeAsAYAMLListOrACommaSeparatedVariableAndAreNeverShown() async throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("distilld-\(UUID().uuidString).yaml").path
        try Data("server:\n  api_keys: [\"\(Self.key1)\", \"\(Self.key2)\"]\nadmin:\n  token: \"\(Self.token)\"\n".utf8)
            .write(to: URL(fileURLWithPath: file))
        let fromFile = try await DistillConfig.load(file: file, environment: [:])
        #expect(fromFile.config.server.apiKeys == [Self.key1, Self.key2])
        #expect(fromFile.config.admin.token == Self.token)
        let shown = fromFile.settings.map { "\($0.key): \($0.value)" }.joined(separator: "\n")
        #expect(!shown.contains(Self.key1) && !shown.contains(Self.key2) && !shown.contains(Self.token))
        #expect(shown.contains("server.api_keys: <2 redacted>") && shown.contains("admin.token: <redacted>"))

        let fromEnvironment = try await DistillConfig.load(
            file: nil,
            environment: [
                "DISTILL_SERVER_API_KEYS": "\(Self.key1),\(Self.key2)", "DISTILL_SERVER_RATE_LIMIT_PER_SECOND": "2.5",
                "DISTILL_SERVER_RATE_LIMIT_BURST": "5",
            ])
        #expect(fromEnvironment.config.server.apiKeys == [Self.key1, Self.key2])
        #expect(fromEnvironment.config.server.rateLimitPerSecond == 2.5)
        #expect(fromEnvironment.config.server.rateLimitBurst == 5)
        #expect(fromEnvironment.config.admin.token == nil)
    }

    @Test(arguments: [
        ("DISTILL_SERVER_API_KEYS", "short", "server.api_keys"),
        ("DISTILL_SERVER_API_KEYS", "\(key1),has a space in it!!", "server.api_keys"),
        ("DISTILL_ADMIN_TOKEN", "too-short-to-resist-guessing", "admin.token"),
        ("DISTILL_SERVER_RATE_LIMIT_BURST", "0", "server.rate_limit_burst"),
        ("DISTILL_SERVER_HEADER_TIMEOUT_SECONDS", "0", "server.header_timeout_seconds"),
    ])
    func weakOrBadValuesAreRefusedWithoutBeingEchoed(variable: String, value: String, key: String) async {
        await #expect {
            _ = try await DistillConfig.load(file: nil, environment: [variable: value])
        } throws: { error in
            let description = "\(error)"
            return description.hasPrefix("\(variable): \(key) must be") && (key == "server.rate_limit_burst" || key.hasSuffix("seconds") || !description.contains(value))
        }
    }
}
