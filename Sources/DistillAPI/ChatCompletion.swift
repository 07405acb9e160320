import Foundation

/// A chat completion (`object: "chat.completion"`), as OpenAI returns it.
public struct ChatCompletion: Codable, Sendable, Equatable {
    public var id: String
    public var object: String = "chat.completion"
    public var created: Int
    public var model: String
    public var choices: [Choice]
    public var usage: Usage?

    public init(id: String, created: Int, model: String, choices: [Choice], usage: Usage?) {
        self.id = id
        self.created = created
        self.model = model
        self.choices = choices
        self.usage = usage
    }

    public struct Choice: Codable, Sendable, Equatable {
        public var index: Int
        public var message: AssistantMessage
        public var logprobs: ChoiceLogprobs?
        public var finishReason: String?

        public init(index: Int, message: AssistantMessage, logprobs: ChoiceLogprobs?, finishReason: String?) {
            self.index = index
            self.message = message
            self.logprobs = logprobs
            self.finishReason = finishReason
        }

        enum CodingKeys: String, CodingKey {
            case index, message, logprobs
            case finishReason = "finish_reason"
        }
    }

    public struct AssistantMessage: Codable, Sendable, Equatable {
        public var role: String
        public var content: String?

        public init(role: String = "assistant", content: String?) {
            self.role = role
            self.content = content
        }
    }
}

extension ChatCompletion {
    /// The wire form of a completion whose answer distill already has (cached, or the student's):
    /// one choice, no tokens billed. The bytes `JSONValue.encoded()` gives for it (sorted keys),
    /// written straight: built as a `JSONValue` first, it took a twentieth of an exact hit.
    public static func ownAnswer(id: String, created: Int64, model: String, content: String, finishReason: String) -> Data {
        var writer = JSONWriter()
        writer.append(#"{"choices":[{"finish_reason":"#)
        writer.writeString(finishReason)
        writer.append(#","index":0,"message":{"content":"#)
        writer.writeString(content)
        writer.append(#","role":"assistant"}}],"created":"#)
        writer.append(String(created))
        writer.append(#","id":"#)
        writer.writeString(id)
        writer.append(#","model":"#)
        writer.writeString(model)
        writer.append(#","object":"chat.completion","usage":{"completion_tokens":0,"prompt_tokens":0,"total_tokens":0}}"#)
        return Data(writer.bytes)
    }
}

/// Token counts of one exchange.
public struct Usage: Codable, Sendable, Equatable {
    public var promptTokens: Int
    public var completionTokens: Int
    public var totalTokens: Int

    public init(promptTokens: Int, completionTokens: Int) {
        self.promptTokens = promptTokens
        self.completionTokens = completionTokens
        self.totalTokens = promptTokens + completionTokens
    }

    enum CodingKeys: String, CodingKey {
        case promptTokens = "prompt_tokens"
        case completionTokens = "completion_tokens"
        case totalTokens = "total_tokens"
    }
}

/// `choices[].logprobs`: per generated token, its log-probability and the most likely alternatives.
public struct ChoiceLogprobs: Codable, Sendable, Equatable {
    public var content: [TokenLogprob]?

    public init(content: [TokenLogprob]?) { self.content = content }
}

public struct TokenLogprob: Codable, Sendable, Equatable {
    public var token: String
    public var logprob: Double
    public var topLogprobs: [TopLogprob]

    public init(token: String, logprob: Double, topLogprobs: [TopLogprob]) {
        self.token = token
        self.logprob = logprob
        self.topLogprobs = topLogprobs
    }

    enum CodingKeys: String, CodingKey {
        case token, logprob
        case topLogprobs = "top_logprobs"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        token = try container.decode(String.self, forKey: .token)
        logprob = try container.decode(Double.self, forKey: .logprob)
        topLogprobs = try container.decodeIfPresent([TopLogprob].self, forKey: .topLogprobs) ?? []
    }
}

public struct TopLogprob: Codable, Sendable, Equatable {
    public var token: String
    public var logprob: Double

    public init(token: String, logprob: Double) {
        self.token = token
        self.logprob = logprob
    }
}

/// One event of a streamed completion (`object: "chat.completion.chunk"`).
public struct ChatCompletionChunk: Codable, Sendable, Equatable {
    public var id: String
    public var object: String = "chat.completion.chunk"
    public var created: Int
    public var model: String
    public var choices: [Choice]
    public var usage: Usage?

    public init(id: String, created: Int, model: String, choices: [Choice], usage: Usage? = nil) {
        self.id = id
        self.created = created
        self.model = model
        self.choices = choices
        self.usage = usage
    }

    public struct Choice: Codable, Sendable, Equatable {
        public var index: Int
        public var delta: Delta
        public var logprobs: ChoiceLogprobs?
        public var finishReason: String?

        public init(index: Int, delta: Delta, logprobs: ChoiceLogprobs? = nil, finishReason: String? = nil) {
            self.index = index
            self.delta = delta
            self.logprobs = logprobs
            self.finishReason = finishReason
        }

        enum CodingKeys: String, CodingKey {
            case index, delta, logprobs
            case finishReason = "finish_reason"
        }
    }

    public struct Delta: Codable, Sendable, Equatable {
        public var role: String?
        public var content: String?

        public init(role: String? = nil, content: String? = nil) {
            self.role = role
            self.content = content
        }
    }
}

/// `GET /v1/models`.
public struct ModelList: Codable, Sendable, Equatable {
    public var object: String = "list"
    public var data: [Model]

    public init(data: [Model]) { self.data = data }

    public struct Model: Codable, Sendable, Equatable {
        public var id: String
        public var object: String = "model"
        public var created: Int
        public var ownedBy: String

        public init(id: String, created: Int, ownedBy: String) {
            self.id = id
            self.created = created
            self.ownedBy = ownedBy
        }

        enum CodingKeys: String, CodingKey {
            case id, object, created
            case ownedBy = "owned_by"
        }
    }
}

extension ChatCompletion {
    /// A one-choice completion of `answer`: how distill answers when the teacher did not.
    public init(id: String, created: Int, model: String, answer: String, finishReason: String, usage: Usage?) {
        self.init(
            id: id, created: created, model: model,
            choices: [.init(index: 0, message: .init(content: answer), logprobs: nil, finishReason: finishReason)],
            usage: usage)
    }
}

extension ChatCompletionChunk {
    /// The chunks of a one-choice stream of `pieces` (which make up the answer): a role chunk, a
    /// chunk per piece (`logprobs` on the first), a finish chunk, and a usage chunk when given.
    public static func stream(
        id: String, created: Int, model: String, pieces: [String], finishReason: String,
        logprobs: ChoiceLogprobs? = nil, usage: Usage? = nil
    ) -> [ChatCompletionChunk] {
        var chunks = [ChatCompletionChunk(id: id, created: created, model: model, choices: [.init(index: 0, delta: .init(role: "assistant", content: ""))])]
        for (index, piece) in pieces.enumerated() {
            chunks.append(
                ChatCompletionChunk(
                    id: id, created: created, model: model,
                    choices: [.init(index: 0, delta: .init(content: piece), logprobs: index == 0 ? logprobs : nil)]))
        }
        chunks.append(ChatCompletionChunk(id: id, created: created, model: model, choices: [.init(index: 0, delta: .init(), finishReason: finishReason)]))
        if let usage { chunks.append(ChatCompletionChunk(id: id, created: created, model: model, choices: [], usage: usage)) }
        return chunks
    }
}
