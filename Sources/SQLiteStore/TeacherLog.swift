import Foundation
import GRDB
import Storage

extension SQLiteStore {
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

    /// A scope's exchanges with ids above `id`, oldest first.
    public func teacherLog(scope: String, after id: Int64, limit: Int) async throws -> [TeacherLogRecord] {
        try await pool.read { db in
            try TeacherLogRecord
                .filter(Column("scope") == scope && Column("id") > id)
                .order(Column("id"))
                .limit(limit)
                .fetchAll(db)
        }
    }

    /// A scope's newest `limit` exchanges, oldest first.
    public func latestTeacherLog(scope: String, limit: Int) async throws -> [TeacherLogRecord] {
        try await pool.read { db in
            Array(try TeacherLogRecord.filter(Column("scope") == scope).order(Column("id").desc).limit(limit).fetchAll(db).reversed())
        }
    }

    /// Yields after every committed transaction that changed the teacher log (at most one yield waits: a slow
    /// reader sees a burst of commits as one), until the stream is dropped.
    public func teacherLogCommits() -> AsyncStream<Void> {
        let (commits, continuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        let observation = DatabaseRegionObservation(tracking: TeacherLogRecord.all())
            .start(in: pool, onError: { _ in continuation.finish() }, onChange: { _ in continuation.yield() })
        continuation.onTermination = { _ in observation.cancel() }
        return commits
    }

    /// Per scope: the exchanges logged after the newest one a stored student version of the scope was
    /// trained through (all of them when it has no version), and whether it has one.
    public func untrainedTeacherLog() async throws -> [String: (count: Int, trained: Bool)] {
        try await pool.read { db in
            var untrained: [String: (count: Int, trained: Bool)] = [:]
            for row in try Row.fetchAll(
                db,
                sql: """
                    SELECT t.scope AS scope, count(*) AS n, v.mark IS NOT NULL AS trained
                    FROM teacher_log t
                    LEFT JOIN (SELECT scope, max(trained_through) AS mark FROM student_versions GROUP BY scope) v ON v.scope = t.scope
                    WHERE t.id > coalesce(v.mark, 0)
                    GROUP BY t.scope
                    """)
            {
                untrained[row["scope"]] = (row["n"], row["trained"])
            }
            return untrained
        }
    }

    /// Per scope: the number of exchanges with ids above `id`, and the newest id.
    public func teacherLogActivity(after id: Int64) async throws -> [String: (count: Int, newest: Int64)] {
        try await pool.read { db in
            var activity: [String: (count: Int, newest: Int64)] = [:]
            for row in try Row.fetchAll(
                db, sql: "SELECT scope, count(*) AS n, max(id) AS newest FROM teacher_log WHERE id > ? GROUP BY scope",
                arguments: [id])
            {
                activity[row["scope"]] = (row["n"], row["newest"])
            }
            return activity
        }
    }

    public func purgeTeacherLog(scope: String?, createdBefore date: Date) async throws -> [String: (count: Int, oldestID: Int64)] {
        try await pool.write { db in
            var sql = "DELETE FROM teacher_log WHERE created_at < ?"
            var arguments: StatementArguments = [date]
            if let scope {
                sql += " AND scope = ?"
                arguments += [scope]
            }
            var purged: [String: (count: Int, oldestID: Int64)] = [:]
            for row in try Row.fetchAll(db, sql: sql + " RETURNING id, scope", arguments: arguments) {
                let (id, scope): (Int64, String) = (row["id"], row["scope"])
                let previous = purged[scope]
                purged[scope] = ((previous?.count ?? 0) + 1, min(previous?.oldestID ?? id, id))
            }
            return purged
        }
    }

    /// Stores embeddings computed after the fact for logged exchanges.
    public func setTeacherLogEmbeddings(_ vectors: [(id: Int64, vector: [Float])]) async throws {
        try await pool.write { db in
            let statement = try db.makeStatement(sql: "UPDATE teacher_log SET embedding = ? WHERE id = ?")
            for (id, vector) in vectors {
                try statement.execute(arguments: [CacheEntryRecord.encode(vector), id])
            }
        }
    }

    /// Forgets every logged embedding (they came from another model).
    public func clearTeacherLogEmbeddings() async throws {
        try await pool.write { db in try db.execute(sql: "UPDATE teacher_log SET embedding = NULL") }
    }
}
