import Foundation
import PostgresNIO
import Storage

extension PostgresStore {
    func insert(_ record: TeacherLogRecord, on connection: PostgresConnection) async throws -> Int64 {
        try await connection.query(
            """
            INSERT INTO teacher_log
              (created_at, request_id, scope, model, messages, parameters, prompt, answer, top_logprobs, prompt_tokens,
               completion_tokens, latency_ms, streamed, embedding)
            VALUES (\(record.createdAt), \(record.requestID), \(record.scope), \(record.model), \(record.messages),
              \(record.parameters), \(record.prompt), \(record.answer), \(record.topLogprobs), \(record.promptTokens),
              \(record.completionTokens), \(record.latencyMilliseconds), \(record.streamed), \(record.embedding))
            RETURNING id
            """,
            logger: logger
        ).all { try $0.decode(Int64.self) }[0]
    }

    static let logColumns =
        "id, created_at, request_id, scope, model, messages, parameters, prompt, answer, top_logprobs, prompt_tokens, completion_tokens, latency_ms, streamed, embedding"

    static func logRecord(_ row: PostgresRow) throws -> TeacherLogRecord {
        let (id, createdAt, requestID, scope, model, messages, parameters, prompt, answer, topLogprobs, promptTokens, completionTokens, latency, streamed, embedding) =
            try row.decode((Int64, Date, String, String, String, String, String, String, String, String?, Int?, Int?, Double, Bool, Data?).self)
        var record = TeacherLogRecord(
            createdAt: createdAt, requestID: requestID, scope: scope, model: model, messages: messages, parameters: parameters,
            prompt: prompt, answer: answer, topLogprobs: topLogprobs, promptTokens: promptTokens, completionTokens: completionTokens,
            latencyMilliseconds: latency, streamed: streamed)
        record.id = id
        record.embedding = embedding
        return record
    }

    public func teacherLog(after id: Int64, limit: Int) async throws -> [TeacherLogRecord] {
        try await query(
            "SELECT \(unescaped: Self.logColumns) FROM teacher_log WHERE id > \(id) ORDER BY id LIMIT \(limit)", logger: logger
        ).all(Self.logRecord)
    }

    public func teacherLogCount() async throws -> Int64 {
        try await query("SELECT count(*) FROM teacher_log", logger: logger).all { try $0.decode(Int64.self) }[0]
    }

    public func teacherLog(scope: String, after id: Int64, limit: Int) async throws -> [TeacherLogRecord] {
        try await query(
            "SELECT \(unescaped: Self.logColumns) FROM teacher_log WHERE scope = \(scope) AND id > \(id) ORDER BY id LIMIT \(limit)",
            logger: logger
        ).all(Self.logRecord)
    }

    public func latestTeacherLog(scope: String, limit: Int) async throws -> [TeacherLogRecord] {
        Array(
            try await query(
                "SELECT \(unescaped: Self.logColumns) FROM teacher_log WHERE scope = \(scope) ORDER BY id DESC LIMIT \(limit)",
                logger: logger
            ).all(Self.logRecord).reversed())
    }

    /// Yields after this node's commits to the teacher log, and whenever another node may have
    /// committed (a burst may yield once), until dropped.
    public func teacherLogCommits() -> AsyncStream<Void> {
        subscribe(feed: false)
    }

    public func untrainedTeacherLog() async throws -> [String: (count: Int, trained: Bool)] {
        var untrained: [String: (count: Int, trained: Bool)] = [:]
        for (scope, count, trained) in try await query(
            """
            SELECT t.scope, count(*), v.mark IS NOT NULL
            FROM teacher_log t
            LEFT JOIN (SELECT scope, max(trained_through) AS mark FROM student_versions GROUP BY scope) v ON v.scope = t.scope
            WHERE t.id > coalesce(v.mark, 0)
            GROUP BY t.scope, v.mark
            """,
            logger: logger
        ).all({ try $0.decode((String, Int, Bool).self) }) {
            untrained[scope] = (count, trained)
        }
        return untrained
    }

    public func teacherLogActivity(after id: Int64) async throws -> [String: (count: Int, newest: Int64)] {
        var activity: [String: (count: Int, newest: Int64)] = [:]
        for (scope, count, newest) in try await query(
            "SELECT scope, count(*), max(id) FROM teacher_log WHERE id > \(id) GROUP BY scope", logger: logger
        ).all({ try $0.decode((String, Int, Int64).self) }) {
            activity[scope] = (count, newest)
        }
        return activity
    }

    public func purgeTeacherLog(scope: String?, createdBefore date: Date) async throws -> [String: (count: Int, oldestID: Int64)] {
        var purged: [String: (count: Int, oldestID: Int64)] = [:]
        for (scope, count, oldest) in try await query(
            """
            WITH gone AS (DELETE FROM teacher_log WHERE created_at < \(date) AND (\(scope)::text IS NULL OR scope = \(scope)) RETURNING id, scope)
            SELECT scope, count(*), min(id) FROM gone GROUP BY scope
            """,
            logger: logger
        ).all({ try $0.decode((String, Int, Int64).self) }) {
            purged[scope] = (count, oldest)
        }
        return purged
    }

    public func setTeacherLogEmbeddings(_ vectors: [(id: Int64, vector: [Float])]) async throws {
        guard !vectors.isEmpty else { return }
        try await transaction { [self] connection in
            for (id, vector) in vectors {
                try await connection.query(
                    "UPDATE teacher_log SET embedding = \(CacheEntryRecord.encode(vector)) WHERE id = \(id)", logger: logger
                ).drain()
            }
        }
    }

    public func clearTeacherLogEmbeddings() async throws {
        try await query("UPDATE teacher_log SET embedding = NULL", logger: logger).drain()
    }
}
