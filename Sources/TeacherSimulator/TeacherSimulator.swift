import DistillAPI
import Foundation
import Hummingbird
import SeededRandom
import Synchronization

/// Faults and timing of the simulated teacher. Rates are probabilities per request, drawn in
/// order from a seeded generator: error (500), rate limit (429), hang, malformed body, a connection
/// closed in the middle of the answer.
public struct SimulatorFaults: Codable, Sendable, Equatable {
    public var latencyMilliseconds: Double = 0
    public var jitterMilliseconds: Double = 0
    public var errorRate: Double = 0
    public var rateLimitRate: Double = 0
    public var hangRate: Double = 0
    public var malformedRate: Double = 0
    public var closeRate: Double = 0

    public init() {}

    enum CodingKeys: String, CodingKey {
        case latencyMilliseconds = "latency_ms"
        case jitterMilliseconds = "jitter_ms"
        case errorRate = "error_rate"
        case rateLimitRate = "rate_limit_rate"
        case hangRate = "hang_rate"
        case malformedRate = "malformed_rate"
        case closeRate = "close_rate"
    }

    public init(from decoder: any Decoder) throws {
        // A partial object updates only the fields it names (`PUT /sim/faults`).
        self.init()
        let c = try decoder.container(keyedBy: CodingKeys.self)
        latencyMilliseconds = try c.decodeIfPresent(Double.self, forKey: .latencyMilliseconds) ?? 0
        jitterMilliseconds = try c.decodeIfPresent(Double.self, forKey: .jitterMilliseconds) ?? 0
        errorRate = try c.decodeIfPresent(Double.self, forKey: .errorRate) ?? 0
        rateLimitRate = try c.decodeIfPresent(Double.self, forKey: .rateLimitRate) ?? 0
        hangRate = try c.decodeIfPresent(Double.self, forKey: .hangRate) ?? 0
        malformedRate = try c.decodeIfPresent(Double.self, forKey: .malformedRate) ?? 0
        closeRate = try c.decodeIfPresent(Double.self, forKey: .closeRate) ?? 0
    }
}

public struct SimulatorOptions: Sendable {
    public var faults = SimulatorFaults()
    public var seed: UInt64 = 1
    /// `Retry-After` seconds sent with a 429.
    public var retryAfterSeconds = 1
    /// How long a hanging request waits before it gives up with a 504.
    public var hangDuration: Duration = .seconds(600)
    /// The answer to a query the data set does not know.
    public var fallbackAnswer = "I am not sure I can help with that."
    /// When set, requests must carry `Authorization: Bearer <apiKey>`.
    public var apiKey: String?
    public var model = "teacher-sim"

    public init() {}
}

/// What the simulator has done since it started: tests check that a request did or did not reach it.
public struct SimulatorStats: Codable, Sendable, Equatable {
    public var requests = 0
    public var answered = 0
    public var streamed = 0
    public var errors = 0
    public var rateLimited = 0
    public var hangs = 0
    public var malformed = 0
    public var closed = 0
    public var unknownQueries = 0
    public var unauthorized = 0

    public init() {}

    enum CodingKeys: String, CodingKey {
        case requests, answered, streamed, errors, hangs, malformed, closed, unauthorized
        case rateLimited = "rate_limited"
        case unknownQueries = "unknown_queries"
    }
}

/// A stand-in for an OpenAI-compatible provider, answering from a data set: the last user
/// message is looked up; the answer is the teacher's, with its top answers as `top_logprobs`.
///
/// Simplification: the whole answer counts as one token, so `logprobs.content` has one entry
/// whose `top_logprobs` are the data set's top answers. Token counts are estimated (4 characters
/// a token), as no tokenizer stands behind them.
public final class TeacherSimulator: Sendable {
    public let dataset: TeacherDataset
    public let options: SimulatorOptions
    private let state: Mutex<State>

    private struct State {
        var faults: SimulatorFaults
        var generator: SplitMix64
        var stats = SimulatorStats()
    }

    private enum Fault {
        case error, rateLimit, hang, malformed, close
    }

    public init(dataset: TeacherDataset, options: SimulatorOptions) {
        self.dataset = dataset
        self.options = options
        self.state = Mutex(State(faults: options.faults, generator: SplitMix64(seed: options.seed)))
    }

    public var stats: SimulatorStats { state.withLock { $0.stats } }

    public var faults: SimulatorFaults {
        get { state.withLock { $0.faults } }
        set { state.withLock { $0.faults = newValue } }
    }

    public func buildRouter() -> Router<BasicRequestContext> {
        let router = Router()
        router.post("/v1/chat/completions") { request, context in
            try await self.complete(request, context: context)
        }
        router.get("/v1/models") { _, _ in
            try Self.json(ModelList(data: [.init(id: self.options.model, created: 0, ownedBy: "distill")]))
        }
        router.get("/sim/stats") { _, _ in try Self.json(self.stats) }
        router.put("/sim/faults") { request, context in
            let body = try await request.body.collect(upTo: 64 << 10)
            self.faults = try JSONDecoder().decode(SimulatorFaults.self, from: Data(buffer: body))
            return try Self.json(self.faults)
        }
        return router
    }

    // MARK: - Chat completions

    private func complete(_ request: Request, context: BasicRequestContext) async throws -> Response {
        if let apiKey = options.apiKey, request.headers[.authorization] != "Bearer \(apiKey)" {
            record { $0.unauthorized += 1 }
            return Self.error(401, "invalid_api_key", "Incorrect API key provided.")
        }
        let body = try await request.body.collect(upTo: context.maxUploadSize)
        let chat: ChatRequest
        do {
            chat = try ChatRequest.parse(Data(buffer: body))
        } catch {
            record { $0.requests += 1 }
            return Self.error(error.status, error.code ?? "invalid_request", error.message)
        }
        let (fault, delay) = draw()
        if delay > .zero { try await Task.sleep(for: delay) }
        switch fault {
        case .error?:
            return Self.error(500, "server_error", "The simulated teacher failed.")
        case .rateLimit?:
            var response = Self.error(429, "rate_limit_exceeded", "Rate limit reached.")
            response.headers[.retryAfter] = String(options.retryAfterSeconds)
            return response
        case .hang?:
            try await Task.sleep(for: options.hangDuration)
            return Self.error(504, "timeout", "The simulated teacher hung.")
        case .malformed?:
            return chat.stream
                ? Response(
                    status: .ok, headers: [.contentType: "text/event-stream"],
                    body: .init(byteBuffer: ByteBuffer(string: "data: {\"choices\": [{\"delta\": {not json\n\n")))
                : Response(
                    status: .ok, headers: [.contentType: "application/json"],
                    body: .init(byteBuffer: ByteBuffer(string: "{\"id\": \"chatcmpl-sim\", \"choices\": [{\"mess")))
        case .close?, nil:
            break
        }

        let query = chat.lastUserMessage?.text ?? ""
        let entry = dataset.lookup(query)
        if entry == nil { record { $0.unknownQueries += 1 } }
        let answer = entry?.answer ?? options.fallbackAnswer
        let top = entry?.top ?? [(answer, 1)]
        let logprobs = chat.wantsLogprobs ? Self.logprobs(answer: answer, top: top, count: chat.body["top_logprobs"]?.intValue ?? 0) : nil
        let usage = Usage(
            promptTokens: chat.messages.reduce(0) { $0 + 4 + Self.estimatedTokens($1.text) },
            completionTokens: Self.estimatedTokens(answer))
        let id = "chatcmpl-sim-\(UInt32.random(in: 0...UInt32.max))"
        let created = Int(Date().timeIntervalSince1970)

        guard chat.stream else {
            var completion = ChatCompletion(id: id, created: created, model: chat.model, answer: answer, finishReason: "stop", usage: usage)
            completion.choices[0].logprobs = logprobs
            if fault == .close {
                // Half the body, then the connection goes: the upstream died while answering.
                let body = try JSONEncoder().encode(completion)
                return Self.closing(after: [ByteBuffer(data: body.prefix(body.count / 2))], headers: [.contentType: "application/json"])
            }
            record { $0.answered += 1 }
            return try Self.json(completion)
        }
        let chunks = Self.chunks(
            id: id, created: created, model: chat.model, answer: answer, logprobs: logprobs,
            usage: chat.wantsStreamUsage ? usage : nil)
        if fault == .close {
            // The first chunk, then the connection goes without `[DONE]`.
            return Self.closing(
                after: chunks.prefix(1).map { ByteBuffer(string: ServerSentEvent(data: $0).encoded) },
                headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"])
        }
        record { $0.streamed += 1 }
        return Response(
            status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"],
            body: ResponseBody { writer in
                for chunk in chunks {
                    try await writer.write(ByteBuffer(string: ServerSentEvent(data: chunk).encoded))
                }
                try await writer.write(ByteBuffer(string: ServerSentEvent(data: "[DONE]").encoded))
                try await writer.finish(nil)
            })
    }

    /// The answer in word-sized pieces, as a token stream would split it.
    static func chunks(
        id: String, created: Int, model: String, answer: String, logprobs: ChoiceLogprobs?, usage: Usage?
    ) -> [String] {
        var pieces: [String] = []
        for character in answer {
            if character == " " || pieces.isEmpty { pieces.append("") }
            pieces[pieces.count - 1].append(character)
        }
        let encoder = JSONEncoder()
        return ChatCompletionChunk.stream(
            id: id, created: created, model: model, pieces: pieces, finishReason: "stop", logprobs: logprobs, usage: usage
        ).map { String(decoding: (try? encoder.encode($0)) ?? Data(), as: UTF8.self) }
    }

    /// A 200 whose body breaks off after `parts`: the server closes the connection mid-answer.
    static func closing(after parts: [ByteBuffer], headers: HTTPFields) -> Response {
        Response(
            status: .ok, headers: headers,
            body: ResponseBody { writer in
                for part in parts { try await writer.write(part) }
                // Throwing from the body makes the server drop the connection instead of ending the response.
                throw SimulatorError.closedMidAnswer
            })
    }

    static func logprobs(answer: String, top: [(answer: String, probability: Double)], count: Int) -> ChoiceLogprobs {
        let best = top.first { $0.answer == answer }?.probability ?? 1
        let alternatives = top.prefix(count).map { TopLogprob(token: $0.answer, logprob: log(max($0.probability, 1e-12))) }
        return ChoiceLogprobs(content: [TokenLogprob(token: answer, logprob: log(best), topLogprobs: alternatives)])
    }

    static func estimatedTokens(_ text: String) -> Int { (text.utf8.count + 3) / 4 }

    /// Draws this request's fault (if any) and its latency.
    private func draw() -> (Fault?, Duration) {
        state.withLock { state in
            state.stats.requests += 1
            let f = state.faults
            let roll = state.generator.nextUnit()
            let jitter = state.generator.nextUnit() * f.jitterMilliseconds
            let delay = Duration.microseconds(Int64((f.latencyMilliseconds + jitter) * 1000))
            var threshold = 0.0
            let faults = [
                (f.errorRate, Fault.error), (f.rateLimitRate, .rateLimit), (f.hangRate, .hang), (f.malformedRate, .malformed),
                (f.closeRate, .close),
            ]
            for (rate, fault) in faults {
                threshold += rate
                if roll < threshold {
                    switch fault {
                    case .error: state.stats.errors += 1
                    case .rateLimit: state.stats.rateLimited += 1
                    case .hang: state.stats.hangs += 1
                    case .malformed: state.stats.malformed += 1
                    case .close: state.stats.closed += 1
                    }
                    return (fault, delay)
                }
            }
            return (nil, delay)
        }
    }

    private func record(_ update: (inout SimulatorStats) -> Void) {
        state.withLock { update(&$0.stats) }
    }

    static func json(_ value: some Encodable) throws -> Response {
        Response(
            status: .ok, headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(data: try JSONEncoder().encode(value))))
    }

    static func error(_ status: Int, _ code: String, _ message: String) -> Response {
        let body = APIError(status: status, type: status >= 500 ? "server_error" : "invalid_request_error", code: code, message: message).body
        return Response(
            status: .init(code: status), headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(data: (try? JSONEncoder().encode(body)) ?? Data())))
    }
}
