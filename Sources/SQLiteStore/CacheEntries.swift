import Foundation
import GRDB
import Storage

extension SQLiteStore {
    /// Commits a teacher exchange and, when given, the cache entry for its answer, in one
    /// transaction: the answer and its cache entry are on disk together, or neither is. An entry
    /// with the same scope and exact key is replaced.
    public func appendTeacherExchange(
        _ record: TeacherLogRecord, cacheEntry: CacheEntryRecord?
    ) async throws -> TeacherExchangeCommit {
        try await pool.write { db in
            var record = record
            try record.insert(db)
            guard var entry = cacheEntry else { return TeacherExchangeCommit(logID: record.id!) }
            entry.teacherLogID = record.id
            let (id, replaced) = try Self.insertReplacing(&entry, db)
            return TeacherExchangeCommit(logID: record.id!, entryID: id, replacedEntryID: replaced)
        }
    }

    /// Adds entries without teacher exchanges (an import), each replacing one with the same scope
    /// and exact key; returns each one's id and the id it replaced.
    public func insertCacheEntries(_ entries: [CacheEntryRecord]) async throws -> [(id: Int64, replaced: Int64?)] {
        try await pool.write { db in
            try entries.map { entry in
                var entry = entry
                return try Self.insertReplacing(&entry, db)
            }
        }
    }

    private static func insertReplacing(_ entry: inout CacheEntryRecord, _ db: Database) throws -> (id: Int64, replaced: Int64?) {
        let replaced = try Int64.fetchOne(
            db, sql: "DELETE FROM cache_entries WHERE scope = ? AND exact_key = ? RETURNING id",
            arguments: [entry.scope, entry.exactKey])
        try entry.insert(db)
        return (entry.id!, replaced)
    }

    public func cacheEntry(id: Int64) async throws -> CacheEntryRecord? {
        try await pool.read { db in try CacheEntryRecord.fetchOne(db, key: id) }
    }

    /// Every entry's key, for building the exact-match map at start-up.
    public func cacheEntryKeys() async throws -> [CacheEntryKey] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT id, scope, exact_key, expires_at FROM cache_entries").map(Self.key)
        }
    }

    /// The scopes that hold entries, with their entry counts.
    public func cacheScopes() async throws -> [String: Int] {
        try await pool.read { db in
            Dictionary(
                uniqueKeysWithValues: try Row.fetchAll(db, sql: "SELECT scope, count(*) AS n FROM cache_entries GROUP BY scope")
                    .map { ($0["scope"] as String, $0["n"] as Int) })
        }
    }

    /// The vectors of a scope's entries with ids above `id`, in id order.
    public func cacheVectors(scope: String, after id: Int64) async throws -> [(id: Int64, vector: [Float])] {
        try await pool.read { db in
            try Row.fetchAll(
                db, sql: "SELECT id, embedding FROM cache_entries WHERE scope = ? AND id > ? AND length(embedding) > 0 ORDER BY id",
                arguments: [scope, id]
            ).map { ($0["id"], CacheEntryRecord.decode($0["embedding"])) }
        }
    }

    /// The ids of a scope's entries that have a vector.
    public func indexedCacheEntryIDs(scope: String) async throws -> Set<Int64> {
        try await pool.read { db in
            Set(try Int64.fetchAll(db, sql: "SELECT id FROM cache_entries WHERE scope = ? AND length(embedding) > 0", arguments: [scope]))
        }
    }

    /// The vectors of the given entries (those that exist).
    public func cacheVectors(ids: Set<Int64>) async throws -> [(id: Int64, vector: [Float])] {
        guard !ids.isEmpty else { return [] }
        let ids = Array(ids)
        return try await pool.read { db in
            // In chunks: SQLite limits the number of bound parameters.
            var vectors: [(id: Int64, vector: [Float])] = []
            for start in stride(from: 0, to: ids.count, by: 500) {
                let chunk = Array(ids[start..<min(start + 500, ids.count)])
                let rows = try Row.fetchAll(
                    db, sql: "SELECT id, embedding FROM cache_entries WHERE length(embedding) > 0 AND id IN (\(chunk.map { _ in "?" }.joined(separator: ",")))",
                    arguments: StatementArguments(chunk))
                for row in rows { vectors.append((row["id"], CacheEntryRecord.decode(row["embedding"]))) }
            }
            return vectors
        }
    }

    /// A page of entries, oldest first; all scopes unless one is given.
    public func cacheEntries(scope: String?, after id: Int64, limit: Int) async throws -> [CacheEntryRecord] {
        try await pool.read { db in
            var request = CacheEntryRecord.filter(Column("id") > id)
            if let scope { request = request.filter(Column("scope") == scope) }
            return try request.order(Column("id")).limit(limit).fetchAll(db)
        }
    }

    public func cacheEntryCount() async throws -> Int {
        try await pool.read { db in try CacheEntryRecord.fetchCount(db) }
    }

    /// Deletes entries and returns the keys of those that existed.
    @discardableResult
    public func deleteCacheEntries(ids: [Int64]) async throws -> [CacheEntryKey] {
        guard !ids.isEmpty else { return [] }
        return try await pool.write { db in
            try Row.fetchAll(
                db, sql: "DELETE FROM cache_entries WHERE id IN (\(ids.map { _ in "?" }.joined(separator: ","))) RETURNING id, scope, exact_key, expires_at",
                arguments: StatementArguments(ids)
            ).map(Self.key)
        }
    }

    /// Deletes the entries of `scope` (all scopes if nil) created before `date` (any time if nil).
    public func purgeCacheEntries(scope: String?, createdBefore date: Date?) async throws -> [CacheEntryKey] {
        try await pool.write { db in
            var conditions: [String] = []
            var arguments: StatementArguments = []
            if let scope {
                conditions.append("scope = ?")
                arguments += [scope]
            }
            if let date {
                conditions.append("created_at < ?")
                arguments += [date]
            }
            let condition = conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ")
            return try Row.fetchAll(
                db, sql: "DELETE FROM cache_entries \(condition) RETURNING id, scope, exact_key, expires_at",
                arguments: arguments
            ).map(Self.key)
        }
    }

    /// Deletes up to `limit` entries that expired before `now`.
    public func deleteExpiredCacheEntries(now: Date, limit: Int) async throws -> [CacheEntryKey] {
        try await pool.write { db in
            try Row.fetchAll(
                db,
                sql: """
                    DELETE FROM cache_entries WHERE id IN
                      (SELECT id FROM cache_entries WHERE expires_at <= ? LIMIT ?)
                    RETURNING id, scope, exact_key, expires_at
                    """,
                arguments: [now, limit]
            ).map(Self.key)
        }
    }

    /// Deletes the `count` least recently used entries (never-hit ones by creation time).
    public func evictLeastRecentlyUsed(count: Int) async throws -> [CacheEntryKey] {
        guard count > 0 else { return [] }
        return try await pool.write { db in
            try Row.fetchAll(
                db,
                sql: """
                    DELETE FROM cache_entries WHERE id IN
                      (SELECT id FROM cache_entries ORDER BY coalesce(last_hit_at, created_at), id LIMIT ?)
                    RETURNING id, scope, exact_key, expires_at
                    """,
                arguments: [count]
            ).map(Self.key)
        }
    }

    /// Adds batched hit counts and last-hit times.
    public func recordCacheHits(_ hits: [Int64: (count: Int, last: Date)]) async throws {
        guard !hits.isEmpty else { return }
        try await pool.write { db in
            let statement = try db.makeStatement(
                sql: "UPDATE cache_entries SET hits = hits + ?, last_hit_at = max(coalesce(last_hit_at, ?), ?) WHERE id = ?")
            for (id, hit) in hits {
                try statement.execute(arguments: [hit.count, hit.last, hit.last, id])
            }
        }
    }

    public func saveIndexSnapshot(scope: String, watermark: Int64, bytes: [UInt8]) async throws {
        try await pool.write { db in
            try db.execute(
                sql: "INSERT OR REPLACE INTO index_snapshots (scope, watermark, snapshot, created_at) VALUES (?, ?, ?, ?)",
                arguments: [scope, watermark, Data(bytes), Date()])
        }
    }

    public func indexSnapshot(scope: String) async throws -> (watermark: Int64, bytes: [UInt8])? {
        try await pool.read { db in
            try Row.fetchOne(db, sql: "SELECT watermark, snapshot FROM index_snapshots WHERE scope = ?", arguments: [scope])
                .map { ($0["watermark"], [UInt8]($0["snapshot"] as Data)) }
        }
    }

    /// Drops every index snapshot (e.g. after the vectors were re-computed).
    public func deleteIndexSnapshots() async throws {
        try await pool.write { db in try db.execute(sql: "DELETE FROM index_snapshots") }
    }

    /// Replaces the stored vectors of the given entries.
    public func replaceCacheVectors(_ vectors: [(id: Int64, vector: [Float])]) async throws {
        try await pool.write { db in
            let statement = try db.makeStatement(sql: "UPDATE cache_entries SET embedding = ? WHERE id = ?")
            for (id, vector) in vectors {
                try statement.execute(arguments: [CacheEntryRecord.encode(vector), id])
            }
        }
    }

    /// Per-scope overrides: scope → (similarity threshold, TTL seconds), nil where the global value holds.
    public func scopeSettings() async throws -> [String: (similarityThreshold: Double?, ttlSeconds: Double?)] {
        try await pool.read { db in
            var settings: [String: (similarityThreshold: Double?, ttlSeconds: Double?)] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT scope, similarity_threshold, ttl_seconds FROM scope_settings") {
                settings[row["scope"]] = (row["similarity_threshold"], row["ttl_seconds"])
            }
            return settings
        }
    }

    public func configureScope(_ scope: String, _ overrides: ScopeOverrides, entryLifetime: Double?) async throws {
        try await pool.write { db in
            if overrides.similarityThreshold == nil, overrides.ttlSeconds == nil {
                try db.execute(sql: "DELETE FROM scope_settings WHERE scope = ?", arguments: [scope])
            } else {
                try db.execute(
                    sql: "INSERT OR REPLACE INTO scope_settings (scope, similarity_threshold, ttl_seconds) VALUES (?, ?, ?)",
                    arguments: [scope, overrides.similarityThreshold, overrides.ttlSeconds])
            }
            if let maxError = overrides.maxError {
                try db.execute(
                    sql: "INSERT OR REPLACE INTO scope_max_errors (scope, max_error) VALUES (?, ?)", arguments: [scope, maxError])
            } else {
                try db.execute(sql: "DELETE FROM scope_max_errors WHERE scope = ?", arguments: [scope])
            }
            let entries = try Row.fetchAll(db, sql: "SELECT id, created_at FROM cache_entries WHERE scope = ?", arguments: [scope])
            let statement = try db.makeStatement(sql: "UPDATE cache_entries SET expires_at = ? WHERE id = ?")
            for entry in entries {
                let createdAt: Date = entry["created_at"]
                try statement.execute(arguments: [entryLifetime.map { createdAt.addingTimeInterval($0) }, entry["id"] as Int64])
            }
        }
    }

    /// A value of the store's key–value metadata (e.g. the embedding model of the stored vectors).
    public func metadata(_ key: String) async throws -> String? {
        try await pool.read { db in try String.fetchOne(db, sql: "SELECT value FROM meta WHERE key = ?", arguments: [key]) }
    }

    public func setMetadata(_ key: String, _ value: String) async throws {
        try await pool.write { db in
            try db.execute(sql: "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", arguments: [key, value])
        }
    }

    private static func key(_ row: Row) -> CacheEntryKey {
        CacheEntryKey(id: row["id"], scope: row["scope"], exactKey: row["exact_key"], expiresAt: row["expires_at"])
    }
}
