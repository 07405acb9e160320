import DistillAPI
import Foundation
import Logging
import Storage
import Teacher

/// Where an answer came from: the `x-distill-source` header.
public enum AnswerSource: String, Sendable {
    case cache, student, teacher
}

/// What the request path knows about a request besides its body.
public struct RequestInfo: Sendable {
    public var requestID: String
    /// Whose scope the request belongs to.
    public var tenant: String

    public init(requestID: String, tenant: String) {
        self.requestID = requestID
        self.tenant = tenant
    }
}

/// A complete answer, ready to send.
public struct CompletionResponse: Sendable {
    public var body: Data
    public var source: AnswerSource
}

/// The request path: from a validated chat request to an answer, and the teacher log behind it.
///
/// A teacher answer is committed to the log before the client receives any of it (for streams:
/// before `[DONE]`); if the commit fails the client gets an error instead of an answer that
/// would be lost to training.
public final class CompletionService: Sendable {
    let store: Store
    let teacher: TeacherClient
    let metrics: DistillMetrics
    let logger: Logger

    public init(store: Store, teacher: TeacherClient, metrics: DistillMetrics, logger: Logger) {
        self.store = store
        self.teacher = teacher
        self.metrics = metrics
        self.logger = logger
    }

    public func complete(_ request: ChatRequest, info: RequestInfo) async throws(APIError) -> CompletionResponse {
        let scope = Scope(of: request, tenant: info.tenant)
        let started = ContinuousClock.now
        let completion: TeacherCompletion
        do {
            completion = try await teacher.complete(request, requestID: info.requestID)
        } catch {
            throw failedTeacherCall(error, started: started, info: info)
        }
        let latency = ContinuousClock.now - started
        metrics.recordTeacherCall(outcome: "success", duration: latency, usage: completion.answer.usage)
        try await log(completion.answer, of: request, scope: scope, info: info, latency: latency, streamed: false)
        return CompletionResponse(body: completion.clientBody.encoded(), source: .teacher)
    }

    /// Opens a streamed answer. Throws before anything is sent when the teacher cannot start one.
    public func stream(_ request: ChatRequest, info: RequestInfo) async throws(APIError) -> CompletionStream {
        let scope = Scope(of: request, tenant: info.tenant)
        let started = ContinuousClock.now
        do {
            let upstream = try await teacher.stream(request, requestID: info.requestID)
            return CompletionStream(
                source: .teacher, service: self, request: request, scope: scope, info: info, started: started,
                upstream: upstream)
        } catch {
            throw failedTeacherCall(error, started: started, info: info)
        }
    }

    func failedTeacherCall(_ error: TeacherError, started: ContinuousClock.Instant, info: RequestInfo) -> APIError {
        metrics.recordTeacherCall(outcome: error.outcome, duration: .now - started, usage: nil)
        logger.warning(
            "teacher call failed",
            metadata: ["distill.request_id": "\(info.requestID)", "distill.outcome": "\(error.outcome)", "distill.error": "\(error)"])
        return error.apiError
    }

    /// Commits the exchange to the teacher log; the answer may be released once this returns.
    func log(
        _ answer: TeacherAnswer, of request: ChatRequest, scope: Scope, info: RequestInfo, latency: Duration,
        streamed: Bool
    ) async throws(APIError) {
        let record = TeacherLogRecord(
            createdAt: Date(), requestID: info.requestID, scope: scope.key, model: request.model,
            messages: JSONValue.array(request.messages.map(\.raw)).encodedString,
            parameters: JSONValue.object(request.body.filter { $0.key != "messages" }).encodedString,
            prompt: request.lastUserMessage?.text ?? "", answer: answer.text,
            topLogprobs: answer.topLogprobs.map { tokens in
                String(decoding: (try? JSONEncoder().encode(tokens)) ?? Data("[]".utf8), as: UTF8.self)
            },
            promptTokens: answer.usage?.promptTokens, completionTokens: answer.usage?.completionTokens,
            latencyMilliseconds: latency / .milliseconds(1), streamed: streamed)
        do {
            try await store.appendTeacherExchange(record)
        } catch {
            metrics.recordStoreFailure(operation: "teacher_log")
            logger.error(
                "cannot record a teacher answer; it is withheld from the client",
                metadata: ["distill.request_id": "\(info.requestID)", "distill.error": "\(error)"])
            throw APIError(
                status: 503, type: "server_error", code: "storage_unavailable",
                message: "The answer could not be recorded, so it was not delivered. Try again later.")
        }
    }
}

/// A streamed answer in progress: `run` forwards it to the client as server-sent events.
public struct CompletionStream: Sendable {
    public let source: AnswerSource
    let service: CompletionService
    let request: ChatRequest
    let scope: Scope
    let info: RequestInfo
    let started: ContinuousClock.Instant
    let upstream: TeacherStream

    /// Sends every event through `send`. The teacher's answer is committed to the log before the
    /// final `[DONE]`. If the client goes away, the rest of the answer is still read and logged;
    /// if the teacher breaks off, the client gets an error event and no `[DONE]`.
    public func run(send: (ServerSentEvent) async throws -> Void) async {
        var clientGone = false
        func deliver(_ event: ServerSentEvent) async {
            guard !clientGone else { return }
            do {
                try await send(event)
            } catch {
                clientGone = true
            }
        }
        var events = upstream.events()
        do throws(APIError) {
            while true {
                let event: TeacherStream.Event?
                do {
                    event = try await events.next()
                } catch {
                    throw service.failedTeacherCall(error, started: started, info: info)
                }
                switch event {
                case .chunk(let chunk)?:
                    await deliver(ServerSentEvent(data: chunk.encodedString))
                case .finished(let answer)?:
                    let latency = ContinuousClock.now - started
                    service.metrics.recordTeacherCall(outcome: "success", duration: latency, usage: answer.usage)
                    try await service.log(
                        answer, of: request, scope: scope, info: info, latency: latency, streamed: true)
                    await deliver(ServerSentEvent(data: "[DONE]"))
                case nil:
                    return
                }
            }
        } catch {
            await deliver(ServerSentEvent(error: error))
        }
    }
}
