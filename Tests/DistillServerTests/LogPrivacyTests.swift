import DistillAPI
import DistillCore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import Synchronization
import Testing

/// At info level the logs name requests, outcomes and errors, never an API key or a prompt.
@Suite struct LogPrivacyTests {
    static let key = "sk-test-secret-0123456789"
    static let prompt = "my card 4111 1111 1111 1111 never arrived"

    @Test func keysAndPromptsStayOutOfTheLogs() async throws {
        let capture = LogCapture()
        let logger = Logger(label: "distilld") { _ in CapturingHandler(capture: capture) }
        let body = JSONValue.object(["model": "m", "messages": [["role": "user", "content": .string(Self.prompt)]]]).encodedString
        // Every outcome that logs: a teacher that cannot be reached (a warning per request), a
        // wrong key, a rate-limited key, and the start-up and shutdown of the system.
        try await RoutesTests().withApp(
            admin: false, logger: logger,
            configure: {
                $0.teacher.baseURL = "http://127.0.0.1:1/v1"
                $0.server.apiKeys = [Self.key]
                $0.server.rateLimitPerSecond = 0.001
                $0.server.rateLimitBurst = 2
            }
        ) { client, _, _ in
            for authorization in ["Bearer \(Self.key)", "Bearer \(Self.key)x", "Bearer \(Self.key)", "Bearer \(Self.key)"] {
                for stream in [false, true] {
                    try await client.execute(
                        uri: "/v1/chat/completions", method: .post, headers: [.authorization: authorization],
                        body: ByteBuffer(string: stream ? String(body.dropLast()) + #","stream":true}"# : body)
                    ) { _ in }
                }
            }
        }
        let lines = capture.lines
        #expect(lines.contains { $0.contains("teacher call failed") }, "the failures were logged: \(lines)")
        for line in lines {
            #expect(!line.contains(Self.key) && !line.contains("0123456789"), "an API key in: \(line)")
            #expect(!line.contains("4111") && !line.contains("never arrived"), "prompt text in: \(line)")
        }
    }
}

final class LogCapture: Sendable {
    private let storage = Mutex<[String]>([])
    var lines: [String] { storage.withLock { $0 } }
    func append(_ line: String) { storage.withLock { $0.append(line) } }
}

/// Keeps every record at info and above, with its metadata, as one line.
struct CapturingHandler: LogHandler {
    let capture: LogCapture
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(
        level: Logger.Level, message: Logger.Message, metadata: Logger.Metadata?, source: String, file: String,
        function: String, line: UInt
    ) {
        let all = self.metadata.merging(metadata ?? [:]) { $1 }
        capture.append("\(level) \(message) \(all.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))")
    }
}
