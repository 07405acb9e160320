import DistillAPI
import DistillClient
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOFoundationCompat
import ServiceLifecycle
import Synchronization

/// distilld's HTTP surface as a small Hummingbird app served in-process: every route of
/// `APIPath` answers with a fixed value of its type, and what each request carried is recorded.
/// The chat route answers by the user message: `refuse` is a 429; in a stream, `break` ends with
/// an error event and `cut` closes the connection before `[DONE]`.
struct StubDaemon {
    /// What a request carried.
    struct Received: Sendable, Equatable {
        var method: String
        /// The path and query as sent.
        var target: String
        var authorization: String?
        var body: String
    }

    final class Recorder: Sendable {
        private let requests = Mutex<[Received]>([])
        func record(_ request: Received) { requests.withLock { $0.append(request) } }
        var all: [Received] { requests.withLock { $0 } }
        var last: Received? { all.last }
    }

    enum Listener {
        case tcp
        case unix(path: String)
    }

    /// Whether and how the admin routes are served (distilld: on the socket, or on TCP with `admin.token`).
    enum Admin {
        case none, open, token(String)
    }

    let recorder = Recorder()
    var admin = Admin.open

    /// Serves the app on `listener` while `body` runs with the client's address.
    func serve(on listener: Listener, _ body: (DistillClient.Address) async throws -> Void) async throws {
        let (started, startedContinuation) = AsyncStream.makeStream(of: DistillClient.Address.self)
        let quiet = Logger(label: "stub-distilld", factory: { _ in SwiftLogNoOpLogHandler() })
        let address: BindAddress = switch listener {
        case .tcp: .hostname("127.0.0.1", port: 0)
        case .unix(let path): .unixDomainSocket(path: path)
        }
        let app = Application(
            router: router(), configuration: .init(address: address),
            onServerRunning: { channel in
                switch listener {
                case .tcp: startedContinuation.yield(.tcp("http://127.0.0.1:\(channel.localAddress?.port ?? 0)"))
                case .unix(let path): startedContinuation.yield(.unix(path))
                }
                startedContinuation.finish()
            },
            logger: quiet)
        let server = ServiceGroup(configuration: .init(services: [app], logger: quiet))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask {
                defer { startedContinuation.finish() }
                try await server.run()
            }
            defer { tasks.cancelAll() }
            var iterator = started.makeAsyncIterator()
            guard let address = await iterator.next() else { throw StubError.didNotStart }
            try await body(address)
        }
    }

    private func router() -> Router<BasicRequestContext> {
        let router = Router()
        router.add(middleware: OpenAIErrors())
        let recorder = recorder
        @Sendable func respond(_ request: Request, _ answer: some Encodable & Sendable, status: HTTPResponse.Status = .ok) async throws -> Response {
            let body = try await request.body.collect(upTo: 1 << 20)
            recorder.record(
                Received(
                    method: request.method.rawValue, target: request.uri.description,
                    authorization: request.headers[.authorization], body: String(buffer: body)))
            return Response(
                status: status, headers: [.contentType: "application/json"],
                body: .init(byteBuffer: ByteBuffer(data: try JSONEncoder.admin.encode(answer))))
        }
        func on(_ path: APIPath, _ answer: some Encodable & Sendable, method: HTTPRequest.Method = .get) {
            router.on(RouterPath(path.pattern), method: method) { request, _ in try await respond(request, answer) }
        }

        router.post(RouterPath(APIPath.chatCompletions.pattern)) { request, _ in try await Self.chat(request, recorder: recorder) }
        on(.models, Fixtures.models)
        on(.healthz, HealthStatus(status: "ok"))
        router.get(RouterPath(APIPath.readyz.pattern)) { request, _ in
            try await respond(request, HealthStatus(status: "not_ready", reasons: ["the embedding model is loading"]), status: .serviceUnavailable)
        }
        router.get(RouterPath(APIPath.metrics.pattern)) { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain"], body: .init(byteBuffer: ByteBuffer(string: Fixtures.metrics)))
        }

        switch admin {
        case .none: return router
        case .open: break
        case .token(let token): router.add(middleware: AdminToken(token: token))
        }
        on(.adminStatus, Fixtures.status)
        on(.adminStats, Fixtures.stats)
        on(.teacherLog, Fixtures.teacherLog)
        on(.cacheEntries, Fixtures.entries)
        on(.cacheEntry, Fixtures.entry)
        on(.cacheEntry, CacheCount(count: 1), method: .delete)
        on(.cacheSearch, [CacheSearchResult(entry: Fixtures.entry, similarity: 0.5)], method: .post)
        on(.cachePurge, CacheCount(count: 3), method: .post)
        on(.cacheExport, Fixtures.export)
        on(.cacheImport, CacheCount(count: 1), method: .post)
        on(.cacheStats, Fixtures.cacheStats)
        on(.cacheScope, Fixtures.scope, method: .put)
        on(.student, Fixtures.student)
        on(.studentVersions, [Fixtures.version])
        on(.studentPromote, Fixtures.version, method: .post)
        on(.studentRollback, Fixtures.version, method: .post)
        on(.distill, Fixtures.distill)
        on(.distillRuns, Fixtures.distill.runs, method: .post)
        router.get(RouterPath(APIPath.backup.pattern)) { _, _ in
            Response(
                status: .ok,
                headers: [
                    .contentType: "application/vnd.sqlite3", .contentLength: String(Fixtures.backup.count),
                    HTTPField.Name(DistillHeader.backupTeacherLogRows)!: "12", HTTPField.Name(DistillHeader.backupCacheEntries)!: "5",
                ],
                body: .init(byteBuffer: ByteBuffer(bytes: Fixtures.backup)))
        }
        return router
    }

    /// A chat completion, as distilld answers one: by the user message, and with its headers.
    private static func chat(_ request: Request, recorder: Recorder) async throws -> Response {
        let body = try await request.body.collect(upTo: 1 << 20)
        recorder.record(
            Received(
                method: "POST", target: request.uri.description, authorization: request.headers[.authorization],
                body: String(buffer: body)))
        let json = try JSONValue.parse(Data(buffer: body))
        let user = json["messages"]?.arrayValue?.last?["content"]?.stringValue ?? ""
        if user == "refuse" {
            throw APIError(
                status: 429, type: "rate_limit_error", code: "rate_limit_exceeded", message: "Slow down.", retryAfterSeconds: 7)
        }
        var headers: HTTPFields = [
            HTTPField.Name(DistillHeader.requestID)!: request.headers[HTTPField.Name(DistillHeader.requestID)!] ?? "made-here",
        ]
        guard json["stream"]?.boolValue == true else {
            headers[.contentType] = "application/json"
            headers[HTTPField.Name(DistillHeader.source)!] = "cache"
            headers[HTTPField.Name(DistillHeader.similarity)!] = "0.9731"
            let completion = ChatCompletion(
                id: "chatcmpl-1", created: 1_700_000_000, model: "m", answer: "echo: \(user)", finishReason: "stop",
                usage: Usage(promptTokens: 3, completionTokens: 2))
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(data: try JSONEncoder().encode(completion))))
        }
        headers[.contentType] = "text/event-stream"
        headers[HTTPField.Name(DistillHeader.source)!] = "student"
        headers[HTTPField.Name(DistillHeader.confidence)!] = "0.9876"
        let chunks = ["Hel", "lo"].map { piece in
            ChatCompletionChunk(id: "chatcmpl-2", created: 1_700_000_000, model: "m", choices: [.init(index: 0, delta: .init(content: piece))])
        }
        return Response(
            status: .ok, headers: headers,
            body: ResponseBody { writer in
                for chunk in chunks {
                    let event = ServerSentEvent(data: String(decoding: try JSONEncoder().encode(chunk), as: UTF8.self))
                    try await writer.write(ByteBuffer(string: event.encoded))
                }
                switch user {
                case "break":
                    let error = APIError(status: 502, type: "upstream_error", code: "teacher_stream_interrupted", message: "The teacher stopped.")
                    try await writer.write(ByteBuffer(string: ServerSentEvent(error: error).encoded))
                case "cut":
                    throw StubError.closedMidStream
                default:
                    try await writer.write(ByteBuffer(string: ServerSentEvent(data: "[DONE]").encoded))
                }
                try await writer.finish(nil)
            })
    }
}

enum StubError: Error {
    case didNotStart
    case closedMidStream
}

/// Errors as distilld sends them: `APIError`s in OpenAI's shape, and an unknown path as a 404 `unknown_url`.
private struct OpenAIErrors: RouterMiddleware {
    typealias Context = BasicRequestContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as APIError {
            return Self.response(error)
        } catch let error as HTTPError where error.status == .notFound {
            return Self.response(APIError(status: 404, type: "invalid_request_error", code: "unknown_url", message: "Unknown request URL."))
        }
    }

    static func response(_ error: APIError) -> Response {
        var headers: HTTPFields = [.contentType: "application/json"]
        if let seconds = error.retryAfterSeconds { headers[.retryAfter] = String(seconds) }
        return Response(
            status: .init(code: error.status), headers: headers,
            body: .init(byteBuffer: ByteBuffer(data: try! JSONEncoder().encode(error.body))))
    }
}

/// The admin routes' bearer token, as distilld checks it.
private struct AdminToken: RouterMiddleware {
    typealias Context = BasicRequestContext
    let token: String

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard context.endpointPath == nil || request.headers[.authorization] == "Bearer \(token)" else {
            throw APIError(status: 401, type: "invalid_request_error", code: "invalid_admin_token", message: "The admin API needs the token.")
        }
        return try await next(request, context)
    }
}

/// The values the stub answers with.
enum Fixtures {
    static let date = Date(timeIntervalSince1970: 1_700_000_000)
    static let scopeKey = String(repeating: "ab", count: 32)
    static let models = ModelList(data: [.init(id: "gpt-test", created: 1_700_000_000, ownedBy: "distill")])
    static let metrics = "distill_requests_total{source=\"cache\"} 4\n"
    static let status = DaemonStatus(
        version: "0.1.0", startedAt: date, uptimeSeconds: 12.5, listeners: ["unix:/run/distilld.sock"],
        store: .init(path: "/var/lib/distill/distill.sqlite", sizeBytes: 4096, teacherLogRows: 12),
        teacher: .init(baseURL: "http://teacher/v1", breakerState: "closed", consecutiveFailures: 0))
    static let stats = DaemonStats(
        requestsBySource: ["cache": 4], errorsByStatus: ["502": 1], teacherCallsByOutcome: ["success": 8], teacherPromptTokens: 30,
        teacherCompletionTokens: 20)
    static let teacherLog = TeacherLogPage(
        entries: [
            TeacherLogEntry(
                id: 1, createdAt: date, requestID: "r1", scope: scopeKey, model: "m", messages: [["role": "user", "content": "hi"]],
                parameters: [:], answer: "hello", topLogprobs: nil, promptTokens: 3, completionTokens: 2, latencyMilliseconds: 12,
                streamed: false)
        ], nextAfter: 1)
    static let entry = CacheEntryInfo(
        id: 7, scope: scopeKey, prompt: "hi", answer: "hello", finishReason: "stop", createdAt: date, expiresAt: nil, lastHitAt: date,
        hits: 2, messages: nil)
    static let entries = CacheEntryPage(entries: [entry], nextAfter: nil)
    static let exportLine = CacheExportLine(
        scope: scopeKey, prompt: "hi", messages: [["role": "user", "content": "hi"]], answer: "hello", finishReason: "stop",
        createdAt: date, expiresAt: nil, model: "all-MiniLM-L6-v2", embedding: "AAAA")
    static let export = CacheExportPage(lines: [exportLine], nextAfter: nil)
    static let scope = CacheScopeInfo(scope: scopeKey, entries: 1, similarityThreshold: 0.9, ttlSeconds: 3600)
    static let cacheStats = CacheStats(
        entries: 1, indexed: 1, heldAnswers: 1, heldAnswerBytes: 5, scopes: [scope], lookups: ["miss": 1], bypasses: [:],
        evictions: [:])
    static let student = StudentStatus(
        enabled: true, targetAgreement: 0.97, auditShare: 0.02,
        scopes: [
            .init(
                scope: scopeKey, version: 3, serving: true, threshold: 0.8, coverage: 0.4, holdoutAgreement: 0.98, answered: 10,
                audits: 1, liveAgreement: nil, liveCoverage: nil)
        ])
    static let version = StudentVersionInfo(
        id: 3, scope: scopeKey, status: "active", createdAt: date, trainedThrough: 1000, trainingSeconds: 4.5, metrics: nil)
    static let distill = DistillStatus(
        enabled: true, intervalSeconds: 60, minNewRows: 200, minRows: 1000,
        runs: [DistillRunInfo(id: 1, scope: scopeKey, trigger: .manual, queuedAt: date, maxEpochs: 30)])
    /// More than one read's worth, so that the download arrives in pieces.
    static let backup = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
}
