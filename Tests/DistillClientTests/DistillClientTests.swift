import DistillAPI
import DistillClient
import Foundation
import Testing

/// DistillClient against a stand-in for distilld's HTTP surface, over real HTTP on loopback and
/// on a Unix socket.
@Suite(.timeLimit(.minutes(1)))
struct DistillClientTests {
    enum Transport: CaseIterable { case tcp, unix }

    /// A socket path with a space and a percent sign: one percent-encoding must carry it.
    static func socketPath() throws -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("distill client %\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        return directory.appendingPathComponent("d.sock").path
    }

    static func serve(
        _ stub: StubDaemon = StubDaemon(), over transport: Transport, _ body: (DistillClient.Address) async throws -> Void
    ) async throws {
        switch transport {
        case .tcp: try await stub.serve(on: .tcp, body)
        case .unix: try await stub.serve(on: .unix(path: try socketPath()), body)
        }
    }

    // MARK: - The public API

    @Test(arguments: Transport.allCases)
    func aPlainCompletionCarriesDistilldsHeadersAsTypedFields(over transport: Transport) async throws {
        let stub = StubDaemon()
        try await Self.serve(stub, over: transport) { address async throws in
            let client = DistillClient(address, apiKey: "sk-tenant")
            let request = ChatCompletionRequest(model: "m", system: "Be brief.", user: "hi", parameters: ["temperature": 0.5])
            let reply = try await client.complete(request, headers: [DistillHeader.requestID: "req-1"])
            #expect(reply.answer == "echo: hi")
            #expect(reply.info == ReplyInfo(source: .cache, similarity: 0.9731, requestID: "req-1"))
            #expect(reply.completion.usage?.totalTokens == 5)

            let sent = try #require(stub.recorder.last)
            #expect(sent.target == "/v1/chat/completions" && sent.authorization == "Bearer sk-tenant")
            let body = try JSONValue.parse(Data(sent.body.utf8))
            #expect(body == [
                "model": "m", "temperature": 0.5,
                "messages": [["role": "system", "content": "Be brief."], ["role": "user", "content": "hi"]],
            ], "no stream field on a plain request")
        }
    }

    @Test(arguments: Transport.allCases)
    func aStreamYieldsItsChunksToDone(over transport: Transport) async throws {
        try await Self.serve(over: transport) { address async throws in
            let stream = try await DistillClient(address).stream(ChatCompletionRequest(model: "m", user: "hi"))
            #expect(stream.info.source == .student && stream.info.confidence == 0.9876 && stream.info.requestID == "made-here")
            let (chunks, answer) = try await stream.collect()
            #expect(chunks.count == 2 && answer == "Hello")
        }
    }

    @Test func aStreamThatFailsSaysHow() async throws {
        try await Self.serve(over: .tcp) { address async throws in
            let client = DistillClient(address)
            let broken = try await client.stream(ChatCompletionRequest(model: "m", user: "break"))
            let error = await #expect(throws: DistillClientError.self) { try await broken.collect() }
            guard case .streamError(let apiError) = error else {
                Issue.record("\(String(describing: error))")
                return
            }
            #expect(apiError.code == "teacher_stream_interrupted" && error?.fromDaemon == true)

            let cut = try await client.stream(ChatCompletionRequest(model: "m", user: "cut"))
            let cutError = await #expect(throws: DistillClientError.self) { try await cut.collect() }
            guard case .connectionFailed(let cutAddress, _) = cutError else {
                Issue.record("\(String(describing: cutError))")
                return
            }
            #expect(cutAddress == address && cutError?.fromDaemon == false)
        }
    }

    @Test func anErrorAnswerIsDistilldsWithItsStatusCodeAndRetryAfter() async throws {
        try await Self.serve(over: .tcp) { address async throws in
            let error = await #expect(throws: DistillClientError.self) {
                try await DistillClient(address).complete(ChatCompletionRequest(model: "m", user: "refuse"))
            }
            #expect(error?.fromDaemon == true)
            #expect(error?.apiError == APIError(
                status: 429, type: "rate_limit_error", code: "rate_limit_exceeded", message: "Slow down.", retryAfterSeconds: 7))
            #expect(error?.description == "distilld answered 429 rate_limit_exceeded: Slow down.")
        }
    }

    @Test(arguments: Transport.allCases)
    func modelsHealthReadinessAndMetrics(over transport: Transport) async throws {
        try await Self.serve(over: transport) { address async throws in
            let client = DistillClient(address)
            #expect(try await client.models() == Fixtures.models)
            #expect(try await client.health() == HealthStatus(status: "ok"))
            #expect(try await client.readiness() == HealthStatus(status: "not_ready", reasons: ["the embedding model is loading"]))
            #expect(try await client.metrics() == Fixtures.metrics)
        }
    }

    // MARK: - The admin API

    @Test(arguments: Transport.allCases)
    func everyAdminEndpointSendsItsRequestAndDecodesItsAnswer(over transport: Transport) async throws {
        let stub = StubDaemon()
        try await Self.serve(stub, over: transport) { address async throws in
            let client = DistillClient(address)
            func sent() -> String {
                guard let last = stub.recorder.last else { return "nothing" }
                return "\(last.method) \(last.target)" + (last.body.isEmpty ? "" : " \(last.body)")
            }
            #expect(try await client.status() == Fixtures.status)
            #expect(sent() == "GET /admin/status")
            #expect(try await client.stats() == Fixtures.stats)
            #expect(try await client.teacherLog(after: 5, limit: 1000) == Fixtures.teacherLog)
            #expect(sent() == "GET /admin/teacher-log?after=5&limit=1000")

            #expect(try await client.cacheEntries(scope: "ab cd&e", limit: 10) == Fixtures.entries)
            #expect(sent() == "GET /admin/cache/entries?scope=ab%20cd%26e&limit=10", "values are encoded; nil ones are left out")
            #expect(try await client.cacheEntry(id: 7) == Fixtures.entry)
            #expect(sent() == "GET /admin/cache/entries/7")
            #expect(try await client.invalidateCacheEntry(id: 7) == 1)
            #expect(sent() == "DELETE /admin/cache/entries/7")
            #expect(try await client.searchCache(CacheSearchRequest(text: "hi", scope: nil, limit: 3)).map(\.entry) == [Fixtures.entry])
            #expect(sent() == #"POST /admin/cache/search {"limit":3,"text":"hi"}"#)
            #expect(try await client.purgeCache(CachePurgeRequest(scope: "abab", olderThanSeconds: 60)) == 3)
            #expect(sent() == #"POST /admin/cache/purge {"older_than_seconds":60,"scope":"abab"}"#)
            #expect(try await client.exportCache(after: 0, limit: 500) == Fixtures.export)
            #expect(sent() == "GET /admin/cache/export?after=0&limit=500")
            #expect(try await client.importCache([Fixtures.exportLine]) == 1)
            #expect(try [CacheExportLine](from: stub.recorder.last?.body) == [Fixtures.exportLine])
            #expect(try await client.cacheStats() == Fixtures.cacheStats)
            #expect(try await client.configureCacheScope("abab", CacheScopeSettings(similarityThreshold: 0.9, ttlSeconds: nil)) == Fixtures.scope)
            #expect(sent() == #"PUT /admin/cache/scopes/abab {"similarity_threshold":0.9}"#)

            #expect(try await client.studentStatus() == Fixtures.student)
            #expect(try await client.studentVersions(scope: "abab") == [Fixtures.version])
            #expect(sent() == "GET /admin/student/versions?scope=abab")
            #expect(try await client.promoteStudentVersion(3) == Fixtures.version)
            #expect(sent() == "POST /admin/student/versions/3/promote")
            #expect(try await client.rollbackStudent(scope: nil) == Fixtures.version)
            #expect(sent() == "POST /admin/student/rollback {}")
            #expect(try await client.distillStatus() == Fixtures.distill)
            #expect(try await client.requestDistillRuns(scope: "abab") == Fixtures.distill.runs)
            #expect(sent() == #"POST /admin/distill/runs {"scope":"abab"}"#)
        }
    }

    @Test func aPathValueStaysOneSegment() {
        #expect(APIPath.cacheScope.filled("../a/b c") == "/admin/cache/scopes/..%2Fa%2Fb%20c")
        #expect(APIPath.studentPromote.filled("3") == "/admin/student/versions/3/promote")
    }

    @Test(arguments: Transport.allCases)
    func aBackupIsWrittenToTheSinkAsItArrives(over transport: Transport) async throws {
        try await Self.serve(over: transport) { address async throws in
            let file = FileManager.default.temporaryDirectory.appendingPathComponent("backup-\(UUID().uuidString)")
            #expect(FileManager.default.createFile(atPath: file.path, contents: nil))
            defer { try? FileManager.default.removeItem(at: file) }
            let sink = try FileHandle(forWritingTo: file)
            let download = try await DistillClient(address).backup(to: sink)
            try sink.close()
            #expect(download == BackupDownload(
                bytes: Int64(Fixtures.backup.count), expectedBytes: Int64(Fixtures.backup.count), teacherLogRows: 12, cacheEntries: 5))
            #expect(download.isComplete)
            #expect(try Data(contentsOf: file) == Data(Fixtures.backup))
        }
    }

    @Test func overTCPTheAdminTokenGoesToAdminRoutesAndTheAPIKeyToTheOthers() async throws {
        var stub = StubDaemon()
        stub.admin = .token("admin-secret")
        try await Self.serve(stub, over: .tcp) { address async throws in
            let refused = await #expect(throws: DistillClientError.self) { try await DistillClient(address).cacheStats() }
            #expect(refused?.apiError?.status == 401 && refused?.apiError?.code == "invalid_admin_token")

            let client = DistillClient(address, apiKey: "sk-tenant", adminToken: "admin-secret")
            #expect(try await client.cacheStats() == Fixtures.cacheStats)
            #expect(stub.recorder.last?.authorization == "Bearer admin-secret")
            _ = try await client.complete(ChatCompletionRequest(model: "m", user: "hi"))
            #expect(stub.recorder.last?.authorization == "Bearer sk-tenant")
        }
    }

    @Test func aTCPListenerWithoutAdminRoutesIsSaidToHaveNoToken() async throws {
        var stub = StubDaemon()
        stub.admin = .none
        try await Self.serve(stub, over: .tcp) { address async throws in
            guard case .tcp(let url) = address else { return }
            for call in [{ _ = try await DistillClient(address).status() }, { _ = try await DistillClient(address).cacheStats() }] {
                let error = await #expect(throws: DistillClientError.self) { try await call() }
                guard case .noAdminAPI(let reported) = error else {
                Issue.record("\(String(describing: error))")
                return
            }
                #expect(reported == url)
                #expect(error?.description.contains("no admin.token") == true)
            }
        }
    }

    // MARK: - Failures on this side

    @Test func aMissingSocketIsSaidToBeMissing() async throws {
        let path = try Self.socketPath()
        let error = await #expect(throws: DistillClientError.self) { try await DistillClient(.unix(path)).status() }
        guard case .socketMissing(let missing) = error else {
                Issue.record("\(String(describing: error))")
                return
            }
        #expect(missing == path && error?.fromDaemon == false)
    }

    @Test func aRefusedConnectionNamesTheAddress() async throws {
        // A port that was just served and closed: nothing listens there now.
        var served: DistillClient.Address?
        try await StubDaemon().serve(on: .tcp) { served = $0 }
        let address = try #require(served)
        let error = await #expect(throws: DistillClientError.self) { try await DistillClient(address).health() }
        guard case .connectionFailed(let failed, let reason) = error else {
                Issue.record("\(String(describing: error))")
                return
            }
        #expect(failed == address && reason == "connection refused")
        #expect(error?.description == "cannot reach distilld at \(address): connection refused")
        #expect(error?.fromDaemon == false)
    }
}

extension Array where Element == CacheExportLine {
    init(from body: String?) throws {
        self = try JSONDecoder.admin.decode([CacheExportLine].self, from: Data((body ?? "").utf8))
    }
}
