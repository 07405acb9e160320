import DistillAPI
import DistillCore
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// The routes of distilld. The public API is OpenAI's plus health and metrics; the admin API
/// (`/admin/…`) is added as `admin` says: on the Unix socket, and on TCP with `admin.token`.
func buildRouter(system: DistillSystem, listeners: Listeners, admin: AdminAccess, access: ClientAccess) -> Router<DistillRequestContext> {
    let router = Router(context: DistillRequestContext.self)
    router.add(middleware: DistillMiddleware(metrics: system.metrics))
    let maxBodyBytes = system.config.server.maxBodyBytes

    // OpenAI's routes, behind the API keys and the rate limit when they are configured.
    let api = router.group().add(middleware: ClientAccessMiddleware(access: access))

    api.post(APIPath.chatCompletions.route) { request, context -> Response in
        let body = try await request.body.collect(upTo: maxBodyBytes)
        let chat = try ChatRequest.parse(Data(buffer: body))
        let info = RequestInfo(requestID: context.requestID, headers: request.headers)
        guard chat.stream else {
            let answer = try await system.completions.complete(chat, info: info)
            return Response(status: .ok, headers: .completion(answer), body: .init(byteBuffer: ByteBuffer(bytes: answer.body)))
        }
        let stream = try await system.completions.stream(chat, info: info)
        var headers: HTTPFields = [.contentType: "text/event-stream", .cacheControl: "no-cache", .distillSource: stream.source.rawValue]
        headers.appendScores(similarity: stream.similarity, confidence: stream.confidence)
        return Response(
            status: .ok, headers: headers,
            body: ResponseBody { writer in
                await stream.run { event in
                    switch event {
                    case .event(let event): try await writer.write(ByteBuffer(string: event.encoded))
                    case .failure(let error): try await writer.write(ByteBuffer(string: ServerSentEvent(error: error.apiError).encoded))
                    }
                }
                try await writer.finish(nil)
            })
    }

    api.get(APIPath.models.route) { _, _ -> Response in
        Response(
            status: .ok, headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(bytes: try await system.listModels().encoded())))
    }

    router.get(APIPath.healthz.route) { _, _ in jsonResponse(["status": "ok"]) }

    router.get(APIPath.readyz.route) { _, _ -> Response in
        let reasons = await system.unreadiness()
        guard reasons.isEmpty else {
            return jsonResponse(["status": .string("not_ready"), "reasons": JSONValue.array(reasons.map { .string($0) })] as JSONValue, status: .serviceUnavailable)
        }
        return jsonResponse(["status": "ready"])
    }

    router.get(APIPath.metrics.route) { _, _ -> Response in
        Response(
            status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(bytes: system.prometheusExposition())))
    }

    switch admin {
    case .none: return router
    case .socket: break
    case .bearer(let token): router.add(middleware: AdminTokenMiddleware(token: token))
    }

    router.get(APIPath.adminStatus.route) { _, _ in
        jsonResponse(await system.status(listeners: listeners.all))
    }

    router.get(APIPath.adminStats.route) { _, _ in
        jsonResponse(system.metrics.stats)
    }

    router.get(APIPath.teacherLog.route) { request, _ -> Response in
        let after = try request.uri.queryParameters.integer("after", default: 0, in: 0...Int64.max)
        let limit = try request.uri.queryParameters.integer("limit", default: 500, in: 1...5000)
        return jsonResponse(try await system.teacherLogPage(after: after, limit: Int(limit)))
    }

    router.post(APIPath.teacherLogPurge.route) { request, context -> Response in
        let purge = try await decode(TeacherLogPurgeRequest.self, from: request)
        guard purge.olderThanSeconds >= 0, purge.olderThanSeconds.isFinite else {
            throw APIError.invalidRequest("'older_than_seconds' must not be negative.", code: "invalid_value", param: "older_than_seconds")
        }
        var scope: String?
        if let prefix = purge.scope { scope = try await system.teacherLogRetention.resolveScope(prefix) }
        let before = system.clock.now.addingTimeInterval(-purge.olderThanSeconds)
        let purged = try await system.teacherLogRetention.purge(scope: scope, createdBefore: before)
        context.logAdminAction(
            "teacher log purged",
            ["distill.scope": "\(scope ?? "all")", "distill.older_than_seconds": "\(purge.olderThanSeconds)", "distill.count": "\(purged.deleted)"])
        return jsonResponse(purged)
    }

    addCacheRoutes(to: router, system: system)
    addStudentRoutes(to: router, system: system)
    addBackupRoutes(to: router, system: system)
    return router
}

/// Similarity and confidence as the `x-distill-similarity` and `x-distill-confidence` headers show
/// them: four decimals, as "%.4f" writes them (`String(format:)` took a twentieth of an exact hit).
/// Written digit by digit into one buffer: joining the pieces as strings cost five allocations.
func formatScore(_ score: Float) -> String {
    guard score.isFinite else { return "\(score)" }
    let scaled = Int((Double(score) * 10_000).rounded()).magnitude
    var digits: [UInt8] = []
    digits.reserveCapacity(16)
    var rest = scaled
    repeat {
        digits.append(UInt8(ascii: "0") + UInt8(rest % 10))
        rest /= 10
        if digits.count == 4 { digits.append(UInt8(ascii: ".")) }
    } while rest > 0 || digits.count < 6
    if score.sign == .minus { digits.append(UInt8(ascii: "-")) }
    return String(decoding: digits.reversed(), as: UTF8.self)
}

extension RequestInfo {
    /// What the request path reads from a completion request's header fields.
    init(requestID: String, headers: HTTPFields) {
        self.init(
            requestID: requestID, tenant: Scope.tenant(authorization: headers[.authorization]), cacheControl: headers[.cacheControl],
            cacheDirective: headers[.distillCache])
    }
}

extension HTTPFields {
    /// The header fields of a complete answer, as the route sends them (`ExactHitShortcut` too).
    static func completion(_ answer: CompletionResponse) -> HTTPFields {
        var headers: HTTPFields = [.contentType: "application/json", .distillSource: answer.source.rawValue]
        headers.appendScores(similarity: answer.similarity, confidence: answer.confidence)
        return headers
    }

    /// `x-distill-similarity` and `x-distill-confidence`, each when there is one: appended to fields
    /// that have neither (setting them searched the fields each time, to replace them).
    mutating func appendScores(similarity: Float?, confidence: Float?) {
        if let similarity { append(HTTPField(name: .distillSimilarity, value: formatScore(similarity))) }
        if let confidence { append(HTTPField(name: .distillConfidence, value: formatScore(confidence))) }
    }
}

extension Parameters {
    /// An integer query parameter; a malformed or out-of-range value is a 400 naming it.
    func integer(_ name: String, default defaultValue: Int64, in range: ClosedRange<Int64>) throws(APIError) -> Int64 {
        guard let raw = self[Substring(name)] else { return defaultValue }
        guard let value = Int64(raw), range.contains(value) else {
            throw .invalidRequest(
                "'\(name)' must be an integer from \(range.lowerBound) to \(range.upperBound).", code: "invalid_value",
                param: name)
        }
        return value
    }
}

extension APIPath {
    /// The path as the router matches it: `:name` segments are parameters to both.
    var route: RouterPath { RouterPath(pattern) }
}
