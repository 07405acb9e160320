import Foundation
import GRDB

/// One teacher exchange: the training data of the student. JSON columns hold the wire form.
public struct TeacherLogRecord: Codable, Sendable, Equatable, FetchableRecord, MutablePersistableRecord {
    public static let databaseTableName = "teacher_log"

    public var id: Int64?
    public var createdAt: Date
    public var requestID: String
    public var scope: String
    public var model: String
    /// The request's `messages` as JSON.
    public var messages: String
    /// The request's other fields as a JSON object.
    public var parameters: String
    /// The last user message's text: what the answer answers.
    public var prompt: String
    public var answer: String
    /// The answer's per-token `top_logprobs` as JSON, when the upstream returned them.
    public var topLogprobs: String?
    public var promptTokens: Int?
    public var completionTokens: Int?
    public var latencyMilliseconds: Double
    public var streamed: Bool

    public init(
        createdAt: Date, requestID: String, scope: String, model: String, messages: String, parameters: String,
        prompt: String, answer: String, topLogprobs: String?, promptTokens: Int?, completionTokens: Int?,
        latencyMilliseconds: Double, streamed: Bool
    ) {
        self.createdAt = createdAt
        self.requestID = requestID
        self.scope = scope
        self.model = model
        self.messages = messages
        self.parameters = parameters
        self.prompt = prompt
        self.answer = answer
        self.topLogprobs = topLogprobs
        self.promptTokens = promptTokens
        self.completionTokens = completionTokens
        self.latencyMilliseconds = latencyMilliseconds
        self.streamed = streamed
    }

    enum CodingKeys: String, CodingKey {
        case id, scope, model, messages, parameters, prompt, answer, streamed
        case createdAt = "created_at"
        case requestID = "request_id"
        case topLogprobs = "top_logprobs"
        case promptTokens = "prompt_tokens"
        case completionTokens = "completion_tokens"
        case latencyMilliseconds = "latency_ms"
    }

    public mutating func didInsert(_ inserted: InsertionSuccess) {
        id = inserted.rowID
    }
}

extension Store {
    /// Commits one teacher exchange and returns its id. When this returns, the row is on disk.
    @discardableResult
    public func appendTeacherExchange(_ record: TeacherLogRecord) async throws -> Int64 {
        try await pool.write { db in
            var record = record
            try record.insert(db)
            return record.id!
        }
    }

    /// Up to `limit` rows with ids above `id`, oldest first.
    public func teacherLog(after id: Int64, limit: Int) async throws -> [TeacherLogRecord] {
        try await pool.read { db in
            try TeacherLogRecord
                .filter(Column("id") > id)
                .order(Column("id"))
                .limit(limit)
                .fetchAll(db)
        }
    }

    public func teacherLogCount() async throws -> Int64 {
        try await pool.read { db in try Int64(TeacherLogRecord.fetchCount(db)) }
    }
}
