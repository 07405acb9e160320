import AsyncHTTPClient
import DistillAPI
import Foundation
import Logging
import NIOCore
import NIOFoundationCompat
import NIOPosix

/// Calls the teacher: any OpenAI-compatible chat-completions upstream.
///
/// Retries connect errors, 429 and 5xx with exponential backoff and jitter (honouring
/// `Retry-After`) within the request budget, and trips a circuit breaker when requests keep
/// failing (a request counts once, however many attempts it made). Asks for `top_logprobs` (soft
/// labels for the student) and, on streams, for usage; what it asked for on its own behalf is
/// stripped from what the client receives.
public final class TeacherClient: Sendable {
    public let configuration: TeacherConfiguration
    public let breaker: CircuitBreaker
    private let http: HTTPClient
    private let backoff: Backoff
    private let logger: Logger

    public var address: String { configuration.address }

    /// A larger completion is treated as a bad answer rather than buffered.
    static let maxResponseBytes = 16 << 20

    /// `now`: the breaker's clock (tests move one by hand to end its open period).
    public init(
        configuration: TeacherConfiguration, logger: Logger,
        now: @escaping @Sendable () -> ContinuousClock.Instant = { ContinuousClock.now }
    ) {
        var httpConfiguration = HTTPClient.Configuration()
        httpConfiguration.timeout = .init(
            connect: TimeAmount(configuration.connectTimeout), read: TimeAmount(configuration.readTimeout))
        // Retries are ours (with backoff, the breaker and the request budget), not the pool's.
        httpConfiguration.connectionPool.retryConnectionEstablishment = false
        httpConfiguration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = configuration.maxConnections
        httpConfiguration.redirectConfiguration = .disallow
        self.http = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: httpConfiguration)
        self.configuration = configuration
        self.breaker = CircuitBreaker(
            failureThreshold: configuration.breakerFailureThreshold, openDuration: configuration.breakerOpenDuration,
            now: now)
        self.backoff = Backoff(initial: configuration.backoffInitial, maximum: configuration.backoffMax)
        self.logger = logger
    }

    public func shutdown() async throws {
        try await http.shutdown()
    }

    /// Asks for a complete answer (`stream: false`).
    public func complete(_ request: ChatRequest, requestID: String) async throws(TeacherError) -> TeacherCompletion {
        let call = prepare(request, stream: false)
        return try await guarded { () async throws(TeacherError) -> TeacherCompletion in
            let (response, attempts) = try await send(call, requestID: requestID)
            let buffer: ByteBuffer
            do {
                buffer = try await response.body.collect(upTo: Self.maxResponseBytes)
            } catch {
                throw Self.classify(error, afterHead: true)
            }
            return try Self.completion(from: Data(buffer: buffer), call: call, attempts: attempts)
        }
    }

    /// Reads a complete answer: anything but a chat completion with `choices[0].message` is a
    /// bad response.
    static func completion(from body: Data, call: PreparedCall, attempts: Int) throws(TeacherError) -> TeacherCompletion {
        let json: JSONValue
        do {
            json = try JSONValue.parse(body)
        } catch {
            throw .badResponse(detail: "\(error)")
        }
        guard json["choices"]?.arrayValue?.first?["message"]?.objectValue != nil else {
            throw .badResponse(detail: "no choices[0].message in the completion")
        }
        var accumulator = AnswerAccumulator()
        try accumulator.add(json)
        return TeacherCompletion(answer: accumulator.answer(attempts: attempts), clientBody: call.strip(json) ?? json)
    }

    /// Asks for a streamed answer. Returns once the upstream has accepted the request (2xx head),
    /// so a failure before the first byte can still reach the client as an ordinary error.
    public func stream(_ request: ChatRequest, requestID: String) async throws(TeacherError) -> TeacherStream {
        let call = prepare(request, stream: true)
        // The upstream is alive and answering once the 2xx head is in: that is the breaker's
        // verdict for a stream; a body that breaks off later counts as one failure.
        let (response, attempts) = try await guarded { () async throws(TeacherError) in
            try await send(call, requestID: requestID)
        }
        return TeacherStream(body: response.body, call: call, attempts: attempts, breaker: breaker)
    }

    /// The upstream's model list (`GET <base>/models`), or only `configuration.model` when that
    /// replaces every request's model. One attempt, no retries: this is a listing, not an answer.
    public func models() async throws(TeacherError) -> JSONValue {
        if let model = configuration.model {
            return ["object": "list", "data": [["id": .string(model), "object": "model", "created": 0, "owned_by": "distill"]]]
        }
        var request = HTTPClientRequest(url: configuration.modelsURL)
        if let apiKey = configuration.apiKey {
            request.headers.add(name: "authorization", value: "Bearer \(apiKey)")
        }
        do {
            let response = try await http.execute(request, timeout: TimeAmount(configuration.readTimeout), logger: logger)
            let body = try await response.body.collect(upTo: 4 << 20)
            switch response.status.code {
            case 200..<300: break
            case 401, 403: throw TeacherError.unauthorized(status: Int(response.status.code))
            default: throw TeacherError.upstreamFailure(status: Int(response.status.code))
            }
            do {
                return try JSONValue.parse(Data(buffer: body))
            } catch {
                throw TeacherError.badResponse(detail: "\(error)")
            }
        } catch let error as TeacherError {
            throw error
        } catch {
            throw classified(error)
        }
    }

    /// Runs one request past the breaker: one permit, one verdict, however many attempts it makes.
    private func guarded<T>(_ request: () async throws(TeacherError) -> T) async throws(TeacherError) -> T {
        if let wait = breaker.permit() { throw .circuitOpen(retryAfter: wait) }
        do {
            let result = try await request()
            breaker.recordSuccess()
            return result
        } catch {
            breaker.record(error)
            throw error
        }
    }

    // MARK: - Sending, with retries

    /// The upstream request: the client's body plus what distill asks for on its own behalf.
    struct PreparedCall: Sendable {
        var body: Data
        var stream: Bool
        /// distill asked for logprobs; the client did not.
        var stripLogprobs: Bool
        /// distill asked for a usage chunk; the client did not.
        var stripUsage: Bool

        /// The upstream JSON as the client should see it; nil when nothing of it is for the client.
        func strip(_ json: JSONValue) -> JSONValue? {
            guard var object = json.objectValue else { return json }
            if stripLogprobs, let choices = object["choices"]?.arrayValue {
                object["choices"] = .array(
                    choices.map { choice in
                        guard var fields = choice.objectValue, fields["logprobs"] != nil else { return choice }
                        fields["logprobs"] = .null
                        return .object(fields)
                    })
            }
            if stripUsage {
                if object["usage"] != nil, object["choices"]?.arrayValue?.isEmpty ?? true { return nil }
                object["usage"] = nil
            }
            return .object(object)
        }
    }

    func prepare(_ request: ChatRequest, stream: Bool) -> PreparedCall {
        var request = request
        request.setField("stream", .bool(stream))
        if let model = configuration.model { request.setField("model", .string(model)) }
        let stripLogprobs = configuration.topLogprobs > 0 && !request.wantsLogprobs
        if stripLogprobs {
            request.setField("logprobs", true)
            request.setField("top_logprobs", .integer(Int64(configuration.topLogprobs)))
        }
        let stripUsage = stream && !request.wantsStreamUsage
        if stream {
            var options = request.body["stream_options"]?.objectValue ?? [:]
            options["include_usage"] = true
            request.setField("stream_options", .object(options))
        } else {
            // OpenAI refuses stream_options on a request that does not stream.
            request.setField("stream_options", nil)
        }
        return PreparedCall(
            body: request.encodedBody(), stream: stream, stripLogprobs: stripLogprobs, stripUsage: stripUsage)
    }

    /// Sends `call` until an attempt gets a 2xx head, the attempts or the budget run out, or the
    /// answer is one that retrying cannot change.
    private func send(_ call: PreparedCall, requestID: String) async throws(TeacherError) -> (HTTPClientResponse, Int) {
        var request = HTTPClientRequest(url: configuration.chatCompletionsURL)
        request.method = .POST
        request.headers.add(name: "content-type", value: "application/json")
        request.headers.add(name: "accept", value: call.stream ? "text/event-stream" : "application/json")
        request.headers.add(name: "x-request-id", value: requestID)
        if let apiKey = configuration.apiKey {
            request.headers.add(name: "authorization", value: "Bearer \(apiKey)")
        }
        request.body = .bytes(ByteBuffer(data: call.body))

        let deadline = ContinuousClock.now + configuration.requestTimeout
        var generator = SystemRandomNumberGenerator()
        var attempt = 0
        while true {
            attempt += 1
            let failure: TeacherError
            var retryAfter: Duration?
            do {
                let remaining = deadline - .now
                let response = try await http.execute(
                    request, deadline: .now() + TimeAmount(remaining), logger: logger)
                switch response.status.code {
                case 200..<300:
                    return (response, attempt)
                case 429:
                    retryAfter = response.headers.first(name: "retry-after").flatMap { parseRetryAfter($0) }
                    failure = .rateLimited(retryAfter: retryAfter)
                case 401, 403:
                    throw TeacherError.unauthorized(status: Int(response.status.code))
                case 400..<500:
                    let body = try? await response.body.collect(upTo: 64 << 10)
                    let error = body.flatMap { try? JSONDecoder().decode(ErrorBody.self, from: Data(buffer: $0)) }
                    throw TeacherError.rejected(status: Int(response.status.code), error: error)
                default:
                    retryAfter = response.headers.first(name: "retry-after").flatMap { parseRetryAfter($0) }
                    failure = .upstreamFailure(status: Int(response.status.code))
                }
                // Drain what is left of an error body so the connection can be reused.
                _ = try? await response.body.collect(upTo: 64 << 10)
            } catch let error as TeacherError {
                throw error
            } catch {
                let kind = classified(error)
                guard case .unreachable = kind else { throw kind }
                failure = kind
            }

            guard attempt < configuration.maxAttempts else { throw failure }
            var delay = backoff.delay(afterAttempt: attempt, using: &generator)
            if let retryAfter {
                guard retryAfter <= configuration.maxRetryAfter else { throw failure }
                delay = max(delay, retryAfter)
            }
            guard ContinuousClock.now + delay < deadline else { throw failure }
            logger.debug(
                "teacher attempt failed; retrying",
                metadata: [
                    "distill.request_id": "\(requestID)", "distill.attempt": "\(attempt)",
                    "distill.outcome": "\(failure.outcome)", "distill.retry_in_ms": "\(delay / .milliseconds(1))",
                ])
            do {
                try await Task.sleep(for: delay)
            } catch {
                throw .cancelled
            }
        }
    }

    /// `classify`, with a connection failure naming the teacher's address.
    private func classified(_ error: any Error) -> TeacherError {
        let kind = Self.classify(error)
        guard case .unreachable(let detail) = kind else { return kind }
        return .unreachable(detail: "\(configuration.address): \(detail)")
    }

    /// Sorts an HTTP client error into what the caller can act on.
    /// `afterHead`: the upstream had answered with a 2xx head, so it was reached, and a body that
    /// breaks off is a bad answer.
    static func classify(_ error: any Error, afterHead: Bool = false) -> TeacherError {
        if let error = error as? HTTPClientError {
            if error == .readTimeout || error == .deadlineExceeded { return .timedOut }
            if error == .cancelled { return .cancelled }
        }
        if error is CancellationError { return .cancelled }
        if error is NIOTooManyBytesError {
            return .badResponse(detail: "the answer is larger than \(maxResponseBytes >> 20) MiB")
        }
        return afterHead
            ? .badResponse(detail: "the answer broke off: \(error)") : .unreachable(detail: reason(error))
    }

    /// Why a connection failed, as the system words it (not the error types' dumps).
    static func reason(_ error: any Error) -> String {
        switch error {
        case let error as HTTPClientError where error == .connectTimeout:
            "no connection within teacher.connect_timeout_seconds"
        case let error as NIOConnectionError:
            error.connectionErrors.first.map { reason($0.error) } ?? "cannot resolve the host"
        case let error as IOError:
            String(cString: strerror(error.errnoCode)).lowercased()
        default:
            "\(error)"
        }
    }
}

/// A streamed teacher answer, read event by event with `events()`.
public struct TeacherStream: Sendable {
    let body: HTTPClientResponse.Body
    let call: TeacherClient.PreparedCall
    public let attempts: Int
    let breaker: CircuitBreaker

    public enum Event: Sendable, Equatable {
        /// A chunk to forward to the client (already stripped of what the client did not ask for).
        case chunk(JSONValue)
        /// The upstream sent `[DONE]`: the whole answer. Nothing follows.
        case finished(TeacherAnswer)
    }

    public func events() -> Events {
        Events(iterator: body.makeAsyncIterator(), call: call, attempts: attempts, breaker: breaker)
    }

    /// Reads the upstream's SSE body and turns it into events. Use from one task.
    public struct Events {
        var iterator: HTTPClientResponse.Body.AsyncIterator
        let call: TeacherClient.PreparedCall
        let attempts: Int
        let breaker: CircuitBreaker
        var parser = ServerSentEventParser()
        var accumulator = AnswerAccumulator()
        var pending: [Event] = []
        var ended = false

        /// The next event, or nil after `.finished`. Throws if the stream breaks off or lies.
        public mutating func next() async throws(TeacherError) -> Event? {
            while pending.isEmpty {
                if ended { return nil }
                let buffer: ByteBuffer?
                do {
                    buffer = try await iterator.next()
                } catch {
                    throw fail(Self.interruption(TeacherClient.classify(error)))
                }
                guard let buffer else {
                    throw fail(.interrupted(detail: "the upstream closed the stream before [DONE]"))
                }
                let events: [ServerSentEvent]
                do {
                    events = try parser.feed(buffer.readableBytesView)
                } catch {
                    throw fail(.badResponse(detail: "a stream event is larger than \(parser.maximumEventBytes) bytes"))
                }
                for event in events {
                    if event.isDone {
                        ended = true
                        pending.append(.finished(accumulator.answer(attempts: attempts)))
                        break
                    }
                    let json: JSONValue
                    do {
                        json = try JSONValue.parse(Data(event.data.utf8))
                    } catch {
                        throw fail(.badResponse(detail: "a stream event is not JSON: \(error)"))
                    }
                    if let error = json["error"], !error.isNull {
                        throw fail(.interrupted(detail: error["message"]?.stringValue ?? "the upstream sent an error"))
                    }
                    do {
                        try accumulator.add(json)
                    } catch {
                        throw fail(error)
                    }
                    if let forward = call.strip(json) { pending.append(.chunk(forward)) }
                }
            }
            return pending.removeFirst()
        }

        private mutating func fail(_ error: TeacherError) -> TeacherError {
            ended = true
            // The request's verdict was given at its head; a body that breaks off adds a failure.
            if error != .cancelled { breaker.recordFailure() }
            return error
        }

        private static func interruption(_ error: TeacherError) -> TeacherError {
            guard case .unreachable(let detail) = error else { return error }
            return .interrupted(detail: detail)
        }
    }
}

extension CircuitBreaker {
    /// Records what the error that ended a request says about the upstream.
    func record(_ error: TeacherError) {
        switch error {
        case .unreachable, .timedOut, .upstreamFailure, .badResponse, .interrupted:
            recordFailure()
        case .unauthorized, .rejected:
            // The upstream answered; the credentials or the request were at fault.
            recordSuccess()
        case .rateLimited, .cancelled, .circuitOpen:
            // Rate limiting is back-pressure from a healthy upstream; a cancelled call says nothing.
            recordAbandoned()
        }
    }
}
