import Foundation
import DistillAPI

/// What the teacher answered, in the form the teacher log keeps.
public struct TeacherAnswer: Sendable, Equatable {
    /// The first choice's text.
    public var text: String
    /// Per generated token of the first choice, the upstream's `top_logprobs`, when it sent them.
    public var topLogprobs: [TokenLogprob]?
    public var usage: Usage?
    public var finishReason: String?
    /// Upstream attempts made (1 = no retry).
    public var attempts: Int

    public init(text: String, topLogprobs: [TokenLogprob]? = nil, usage: Usage? = nil, finishReason: String?, attempts: Int = 1) {
        self.text = text
        self.topLogprobs = topLogprobs
        self.usage = usage
        self.finishReason = finishReason
        self.attempts = attempts
    }
}

/// A complete (non-streamed) teacher answer, with the body the client receives.
public struct TeacherCompletion: Sendable {
    public var answer: TeacherAnswer
    /// The upstream's completion, minus the fields distill asked for on its own behalf.
    public var clientBody: JSONValue

    public init(answer: TeacherAnswer, clientBody: JSONValue) {
        self.answer = answer
        self.clientBody = clientBody
    }
}

/// Builds a `TeacherAnswer` from the upstream's JSON, complete or chunk by chunk.
struct AnswerAccumulator {
    private(set) var text = ""
    private(set) var tokens: [TokenLogprob] = []
    private(set) var sawLogprobs = false
    private(set) var usage: Usage?
    private(set) var finishReason: String?

    /// Adds a chunk (`choices[].delta`) or a whole completion (`choices[].message`).
    mutating func add(_ json: JSONValue) throws(TeacherError) {
        if let usageJSON = json["usage"], !usageJSON.isNull {
            usage = try usageJSON.decoded(as: Usage.self)
        }
        guard let choice = json["choices"]?.arrayValue?.first(where: { ($0["index"]?.intValue ?? 0) == 0 }) else {
            return
        }
        let message = choice["delta"] ?? choice["message"]
        if let content = message?["content"]?.stringValue {
            // The teacher log keeps answers as SQLite TEXT, which ends at a NUL: such an answer
            // would be logged and cached cut short, so it is refused instead.
            guard !content.utf8.contains(0) else { throw .badResponse(detail: "the answer contains a NUL character") }
            text += content
        }
        if let reason = choice["finish_reason"]?.stringValue { finishReason = reason }
        if let content = choice["logprobs"]?["content"], !content.isNull {
            sawLogprobs = true
            tokens += try content.decoded(as: [TokenLogprob].self)
        }
    }

    func answer(attempts: Int) -> TeacherAnswer {
        TeacherAnswer(
            text: text, topLogprobs: sawLogprobs ? tokens : nil, usage: usage, finishReason: finishReason,
            attempts: attempts)
    }
}

extension JSONValue {
    /// Decodes a typed value out of this JSON; a mismatch means the upstream sent a bad body.
    func decoded<T: Decodable>(as type: T.Type) throws(TeacherError) -> T {
        do {
            return try JSONDecoder().decode(T.self, from: encoded())
        } catch {
            throw .badResponse(detail: "unexpected \(T.self): \(error)")
        }
    }
}
