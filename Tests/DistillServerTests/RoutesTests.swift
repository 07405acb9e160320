import DistillAPI
import DistillCore
import Embedding
import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import SeededRandom
import TeacherSimulator
import Testing

@testable import DistillServer

@Suite struct RoutesTests {
    static let dataset = TeacherDataset(entries: [.init(text: "where is my card", gold: nil, answer: "card_arrival", top: [("card_arrival", 1)])])
    static let quiet = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
    static let question = #"{"model":"m","messages":[{"role":"user","content":"where is my card"}]"#
    /// The real MiniLM embedder, loaded once for the suite.
    static let embedder = try! DistillSystem.loadEmbedder(modelDirectory, logger: quiet)
    static let modelDirectory: DistillConfig.Embedding = {
        var embedding = DistillConfig.Embedding()
        embedding.modelDir = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../models/all-MiniLM-L6-v2").standardized.path
        return embedding
    }()

    /// A system over a fresh data directory, its teacher a simulator on loopback, served
    /// in-process through its admin (Unix-socket) router or its public (TCP) one.
    func withApp(
        admin: Bool = true, logger: Logger = quiet, configure: (inout DistillConfig) -> Void = { _ in },
        _ test: @escaping @Sendable (any TestClientProtocol, DistillSystem, TeacherSimulator) async throws -> Void
    ) async throws {
        let simulator = TeacherSimulator(dataset: Self.dataset, options: SimulatorOptions())
        try await simulator.serve { baseURL in
            var config = DistillConfig()
            config.store.dataDir = FileManager.default.temporaryDirectory.appendingPathComponent("distill-server-\(UUID().uuidString)").path
            config.teacher.baseURL = baseURL
            config.teacher.maxAttempts = 1
            config.server.maxBodyBytes = 4096
            configure(&config)
            let system = try await DistillSystem.open(config: config, environment: [:], embedder: Self.embedder, logger: logger)
            // The daemon's own application; the router test never binds its address.
            let listener: Listener = admin ? .unix(config.store.dataDir + "/distilld.sock") : .tcp(.init(host: "127.0.0.1", port: 0))
            let app = buildApplication(system: system, listener: listener, listeners: Listeners(), logger: logger)
            try await app.test(.router) { client in try await test(client, system, simulator) }
            await system.shutdown(logger: logger)
        }
    }

    /// The OpenAI-style error code of a response; nil if its body is no such error.
    static func errorCode(_ response: TestResponse) -> String? {
        (try? JSONDecoder().decode(ErrorBody.self, from: Data(buffer: response.body)))?.error.code
    }

    @Test(arguments: [
        (#"{"model":"m","messages":["#, 400, "invalid_json"),
        (#"{"model":"m","messages":"hi"}"#, 400, "invalid_type"),
        (#"{"model":"m"}"#, 400, "missing_required_parameter"),
        (#"{"model":"m","messages":[{"role":"user","content":""}]}"#, 400, "empty_content"),
        (String(repeating: " ", count: 5000) + "{}", 413, "request_too_large"),
    ])
    func badInputGetsItsStatusAndAnOpenAIStyleError(body: String, status: Int, code: String) async throws {
        try await withApp { client, _, simulator in
            try await client.execute(uri: "/v1/chat/completions", method: .post, body: ByteBuffer(string: body)) { response in
                #expect(Int(response.status.code) == status)
                #expect(Self.errorCode(response) == code)
                #expect(response.headers[.contentType] == "application/json")
                #expect(response.headers[.distillSource] == "none")
                #expect(response.headers[.requestID]?.isEmpty == false)
            }
            #expect(simulator.stats.requests == 0)
        }
    }

    @Test func invalidUTF8IsABadRequest() async throws {
        try await withApp { client, _, _ in
            var body = ByteBuffer(string: #"{"model":"m","messages":[{"role":"user","content":"caf"#)
            body.writeBytes([0xE9, 0x22, 0x7D, 0x5D, 0x7D])
            try await client.execute(uri: "/v1/chat/completions", method: .post, body: body) { response in
                #expect(response.status == .badRequest)
                #expect(Self.errorCode(response) == "invalid_encoding")
            }
        }
    }

    @Test func unknownRoutesAreOpenAIStyle404s() async throws {
        try await withApp { client, _, _ in
            try await client.execute(uri: "/v1/embeddings", method: .post) { response in
                #expect(response.status == .notFound)
                #expect(Self.errorCode(response) == "unknown_url")
            }
        }
    }

    @Test func answersFromTheTeacherWithItsHeaders() async throws {
        try await withApp { client, system, _ in
            try await client.execute(
                uri: "/v1/chat/completions", method: .post, headers: [.requestID: "client-id-7"],
                body: ByteBuffer(string: Self.question + "}")
            ) { response in
                #expect(response.status == .ok)
                #expect(response.headers[.distillSource] == "teacher")
                #expect(response.headers[.requestID] == "client-id-7")
                let completion = try JSONDecoder().decode(ChatCompletion.self, from: Data(buffer: response.body))
                #expect(completion.choices.first?.message.content == "card_arrival")
            }
            try await client.execute(
                uri: "/v1/chat/completions", method: .post, headers: [.requestID: "has spaces and ✓"],
                body: ByteBuffer(string: Self.question + #","stream":true}"#)
            ) { response in
                #expect(response.status == .ok)
                #expect(response.headers[.contentType] == "text/event-stream")
                #expect(response.headers[.requestID] != "has spaces and ✓", "an unusable id is replaced")
                #expect(response.headers[.distillSource] == "cache", "the same question again")
                #expect(response.headers[.distillSimilarity] == "1.0000")
                #expect(String(buffer: response.body).hasSuffix("data: [DONE]\n\n"))
            }
            #expect(try await system.store.teacherLogCount() == 1)
            let metrics = String(decoding: system.prometheusExposition(), as: UTF8.self)
            #expect(metrics.contains(#"distill_http_requests_total{route="/v1/chat/completions",status="200",source="teacher"} 1"#))
            #expect(metrics.contains(#"distill_http_requests_total{route="/v1/chat/completions",status="200",source="cache"} 1"#))
            #expect(metrics.contains(#"distill_cache_lookups_total{result="exact_hit"} 1"#))
            #expect(metrics.contains(#"distill_teacher_calls_total{outcome="success"} 1"#))
            #expect(metrics.contains(#"distill_kernels_info{kernels="\#(KernelChoice.host.kernelSet)"} 1"#))
        }
    }

    @Test func scoresAreWrittenAsPrintfWouldWriteThem() {
        var generator = SplitMix64(seed: 4)
        let scores = [0, 1, 0.5, 0.95, -0.25, 0.99995, 0.00004, 1e-7] + (0..<1_000).map { _ in Float(generator.nextUnit() * 2 - 1) }
        for score in scores where abs(Double(score) * 10_000 - (Double(score) * 10_000).rounded(.down) - 0.5) > 1e-6 {
            // (Halfway cases aside: printf rounds the binary value, which may lie on either side.)
            #expect(formatScore(score) == String(format: "%.4f", score), "\(score)")
        }
        #expect(formatScore(.nan) == "nan")
    }

    @Test func aGeneratedRequestIDIs32HexDigits() {
        let ids = (0..<100).map { _ in DistillMiddleware.requestID(from: nil) }
        #expect(ids.allSatisfy { $0.utf8.count == 32 && $0.allSatisfy(\.isHexDigit) && $0 == $0.lowercased() })
        #expect(Set(ids).count == 100)
    }

    @Test func theAdminAPIIsOnlyOnTheAdminRouter() async throws {
        try await withApp(admin: false) { client, _, _ in
            try await client.execute(uri: "/admin/status", method: .get) { #expect($0.status == .notFound) }
        }
        try await withApp(admin: true) { client, system, _ in
            try await client.execute(uri: "/admin/status", method: .get) { response in
                let status = try JSONDecoder.admin.decode(DaemonStatus.self, from: Data(buffer: response.body))
                #expect(status.version == DistillVersion.current)
                #expect(status.store.path == system.config.store.databasePath)
                #expect(status.teacher.breakerState == "closed")
                #expect(status.kernels == KernelChoice.host.description)
            }
            try await client.execute(uri: "/admin/teacher-log?limit=0", method: .get) { response in
                #expect(response.status == .badRequest)
                #expect(Self.errorCode(response) == "invalid_value")
            }
            try await client.execute(uri: "/admin/teacher-log?after=0&limit=10", method: .get) { response in
                let page = try JSONDecoder.admin.decode(TeacherLogPage.self, from: Data(buffer: response.body))
                #expect(page.entries.isEmpty && page.nextAfter == nil)
            }
        }
    }

    @Test func readinessFollowsTheBreaker() async throws {
        try await withApp(configure: { $0.teacher.breakerFailureThreshold = 2 }) { client, system, _ in
            try await client.execute(uri: "/healthz", method: .get) { #expect($0.status == .ok) }
            try await client.execute(uri: "/readyz", method: .get) { #expect($0.status == .ok) }
            system.teacher.breaker.recordFailure()
            system.teacher.breaker.recordFailure()
            try await client.execute(uri: "/readyz", method: .get) { response in
                #expect(response.status == .serviceUnavailable)
                #expect(String(buffer: response.body).contains("circuit breaker open"))
            }
            try await client.execute(uri: "/healthz", method: .get) { #expect($0.status == .ok, "alive, just not ready") }
        }
    }

    @Test func oneDataDirectoryServesOneDaemon() async throws {
        try await withApp { _, system, _ in
            await #expect {
                _ = try await DistillSystem.open(config: system.config, environment: [:], embedder: Self.embedder, logger: Self.quiet)
            } throws: { error in
                guard case .alreadyRunning = error as? SystemError else { return false }
                return true
            }
        }
    }

    /// A DISTILL_KERNELS the kernels would ignore stops the start, before anything is opened.
    @Test func anUnknownKernelOverrideIsRefused() async throws {
        try await withApp { _, system, _ in
            await #expect {
                _ = try await DistillSystem.open(
                    config: system.config, environment: ["DISTILL_KERNELS": "sse9"], embedder: Self.embedder, logger: Self.quiet)
            } throws: { error in
                guard case .kernels(.unknownSet("sse9")) = error as? SystemError else { return false }
                return "\(error)".contains("DISTILL_KERNELS=sse9 names no kernel set")
            }
        }
    }
}
