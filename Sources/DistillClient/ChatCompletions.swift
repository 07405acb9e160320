import AsyncHTTPClient
import DistillAPI
import Foundation
import NIOCore
import NIOHTTP1

/// A chat-completions request as a client sends it.
public struct ChatCompletionRequest: Sendable, Equatable {
    public struct Message: Sendable, Equatable {
        public var role: String
        public var content: String

        public init(role: String, content: String) {
            self.role = role
            self.content = content
        }
    }

    public var model: String
    public var messages: [Message]
    /// Every other parameter (temperature, n, logprobs, …), sent as given.
    public var parameters: [String: JSONValue]

    public init(model: String, messages: [Message], parameters: [String: JSONValue] = [:]) {
        self.model = model
        self.messages = messages
        self.parameters = parameters
    }

    /// One user message, after a system prompt if there is one.
    public init(model: String, system: String? = nil, user: String, parameters: [String: JSONValue] = [:]) {
        let system = system.map { [Message(role: "system", content: $0)] } ?? []
        self.init(model: model, messages: system + [Message(role: "user", content: user)], parameters: parameters)
    }

    /// The JSON body; `stream` is sent only when true.
    func body(stream: Bool) -> Data {
        var body = parameters
        body["model"] = .string(model)
        body["messages"] = .array(messages.map { .object(["role": .string($0.role), "content": .string($0.content)]) })
        if stream { body["stream"] = true }
        return JSONValue.object(body).encoded()
    }
}

/// What distilld says about an answer in its headers.
public struct ReplyInfo: Sendable, Equatable {
    /// Who answered.
    public var source: DistillSource?
    /// A cache hit's similarity to the entry it served.
    public var similarity: Double?
    /// The student's confidence, when a student looked at the request.
    public var confidence: Double?
    public var requestID: String?

    public init(source: DistillSource?, similarity: Double? = nil, confidence: Double? = nil, requestID: String? = nil) {
        (self.source, self.similarity, self.confidence, self.requestID) = (source, similarity, confidence, requestID)
    }

    init(_ headers: HTTPHeaders) {
        source = headers.first(name: DistillHeader.source).flatMap(DistillSource.init(rawValue:))
        similarity = headers.first(name: DistillHeader.similarity).flatMap(Double.init)
        confidence = headers.first(name: DistillHeader.confidence).flatMap(Double.init)
        requestID = headers.first(name: DistillHeader.requestID)
    }
}

/// A chat completion and what distilld's headers say about it.
public struct ChatReply: Sendable {
    public var completion: ChatCompletion
    public var info: ReplyInfo

    /// The first choice's text.
    public var answer: String? { completion.choices.first?.message.content }
}

extension DistillClient {
    /// `POST /v1/chat/completions`. `headers` go with the request (`x-request-id`,
    /// `cache-control`, `x-distill-cache`, …).
    public func complete(_ request: ChatCompletionRequest, headers: [String: String] = [:]) async throws -> ChatReply {
        let response = try await execute(chatCall(request, stream: false, headers: headers))
        let body = try await collect(response)
        return ChatReply(completion: try decode(ChatCompletion.self, status: response.status, body: body), info: ReplyInfo(response.headers))
    }

    /// `POST /v1/chat/completions` with `stream: true`: the chunks as they come.
    public func stream(_ request: ChatCompletionRequest, headers: [String: String] = [:]) async throws -> ChatStream {
        let response = try await execute(chatCall(request, stream: true, headers: headers))
        guard response.headers.first(name: "content-type")?.hasPrefix("text/event-stream") == true else {
            let body = try await collect(response)
            throw DistillClientError.unexpectedResponse(
                status: Int(response.status.code), detail: "not an event stream: \(String(decoding: body.prefix(200), as: UTF8.self))")
        }
        return ChatStream(info: ReplyInfo(response.headers), body: response.body, address: address)
    }

    private func chatCall(_ request: ChatCompletionRequest, stream: Bool, headers: [String: String]) -> Call {
        Call(method: .POST, path: APIPath.chatCompletions.pattern, body: request.body(stream: stream), headers: headers)
    }

    /// `GET /v1/models`.
    public func models() async throws -> ModelList {
        try await json(Call(method: .GET, path: APIPath.models.pattern), as: ModelList.self)
    }

    /// `GET /healthz`: `ok` while the process serves.
    public func health() async throws -> HealthStatus {
        try await json(Call(method: .GET, path: APIPath.healthz.pattern), as: HealthStatus.self)
    }

    /// `GET /readyz`: `ready`, or `not_ready` with the reasons (distilld's 503 is this answer, not an error).
    public func readiness() async throws -> HealthStatus {
        try await json(Call(method: .GET, path: APIPath.readyz.pattern, alsoAnswers: [503]), as: HealthStatus.self)
    }

    /// `GET /metrics`: the Prometheus exposition text.
    public func metrics() async throws -> String {
        let response = try await execute(Call(method: .GET, path: APIPath.metrics.pattern))
        return String(decoding: try await collect(response), as: UTF8.self)
    }
}

/// A streamed chat completion: its chunks until `[DONE]`. An error event throws
/// `DistillClientError.streamError`; a stream that ends without `[DONE]` throws `.connectionFailed`.
public struct ChatStream: AsyncSequence, Sendable {
    public typealias Element = ChatCompletionChunk
    public let info: ReplyInfo
    let body: HTTPClientResponse.Body
    let address: DistillClient.Address

    public struct AsyncIterator: AsyncIteratorProtocol {
        var bytes: HTTPClientResponse.Body.AsyncIterator
        let address: DistillClient.Address
        var parser = ServerSentEventParser()
        var pending: [ServerSentEvent] = []
        var done = false

        public mutating func next() async throws -> ChatCompletionChunk? {
            while !done {
                if !pending.isEmpty {
                    let event = pending.removeFirst()
                    if event.isDone {
                        done = true
                        return nil
                    }
                    return try chunk(event)
                }
                let buffer: ByteBuffer?
                do {
                    buffer = try await bytes.next()
                } catch {
                    throw DistillClientError.connectionFailed(address: address, reason: DistillClient.reason(error))
                }
                guard let buffer else {
                    throw DistillClientError.connectionFailed(address: address, reason: "the stream ended before [DONE]")
                }
                do {
                    pending += try parser.feed(buffer.readableBytesView)
                } catch {
                    throw DistillClientError.unexpectedResponse(status: 200, detail: "an event larger than \(parser.maximumEventBytes) bytes")
                }
            }
            return nil
        }

        private func chunk(_ event: ServerSentEvent) throws -> ChatCompletionChunk {
            let data = Data(event.data.utf8)
            if let error = try? JSONDecoder().decode(ErrorBody.self, from: data).error {
                throw DistillClientError.streamError(
                    APIError(status: 200, type: error.type, code: error.code, param: error.param, message: error.message))
            }
            do {
                return try JSONDecoder().decode(ChatCompletionChunk.self, from: data)
            } catch {
                throw DistillClientError.unexpectedResponse(status: 200, detail: "not a chunk: \(event.data.prefix(200))")
            }
        }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(bytes: body.makeAsyncIterator(), address: address)
    }

    /// Reads the stream to `[DONE]`: its chunks and the first choice's text.
    public func collect() async throws -> (chunks: [ChatCompletionChunk], answer: String) {
        var chunks: [ChatCompletionChunk] = []
        for try await chunk in self { chunks.append(chunk) }
        return (chunks, chunks.compactMap { $0.choices.first?.delta.content }.joined())
    }
}
