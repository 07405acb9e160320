import Foundation
import PostgresNIO
import Storage

extension PostgresStore {
    /// Commits a teacher exchange and, when given, the cache entry for its answer, in one
    /// transaction (with their changes in the feed): both are committed together, or neither is.
    public func appendTeacherExchange(
        _ exchange: TeacherLogRecord, cacheEntry: CacheEntryRecord?
    ) async throws -> TeacherExchangeCommit {
        let commit = try await write { [self] connection in
            let logID = try await insert(exchange, on: connection)
            var changes: [StoreChange] = [.teacherLogAppended(scope: exchange.scope)]
            var commit = TeacherExchangeCommit(logID: logID)
            if var entry = cacheEntry {
                entry.teacherLogID = logID
                (commit.entryID, commit.replacedEntryID) = try await insertReplacing(entry, on: connection, changes: &changes)
            }
            try await log(changes, on: connection)
            return commit
        }
        announceTeacherLogCommit()
        return commit
    }

    public func insertCacheEntries(_ entries: [CacheEntryRecord]) async throws -> [(id: Int64, replaced: Int64?)] {
        try await write { [self] connection in
            var changes: [StoreChange] = []
            var committed: [(id: Int64, replaced: Int64?)] = []
            for entry in entries { committed.append(try await insertReplacing(entry, on: connection, changes: &changes)) }
            try await log(changes, on: connection)
            return committed
        }
    }

    /// Inserts `entry` in place of the scope's entry with the same exact key, if any. The feed's
    /// lock, held by the transaction, keeps two nodes from inserting the same key at once.
    private func insertReplacing(
        _ entry: CacheEntryRecord, on connection: PostgresConnection, changes: inout [StoreChange]
    ) async throws -> (id: Int64, replaced: Int64?) {
        let replaced = try await connection.query(
            "DELETE FROM cache_entries WHERE scope = \(entry.scope) AND exact_key = \(entry.exactKey) RETURNING id", logger: logger
        ).all { try $0.decode(Int64.self) }.first
        let id = try await connection.query(
            """
            INSERT INTO cache_entries
              (scope, exact_key, prompt, messages, answer, finish_reason, embedding, created_at, expires_at, last_hit_at, hits, teacher_log_id)
            VALUES (\(entry.scope), \(entry.exactKey), \(entry.prompt), \(entry.messages), \(entry.answer), \(entry.finishReason),
              \(entry.embedding), \(entry.createdAt), \(entry.expiresAt), \(entry.lastHitAt), \(entry.hits), \(entry.teacherLogID))
            RETURNING id
            """,
            logger: logger
        ).all { try $0.decode(Int64.self) }[0]
        if let replaced {
            changes.append(.cacheEntryRemoved(CacheEntryKey(id: replaced, scope: entry.scope, exactKey: entry.exactKey, expiresAt: nil)))
        }
        changes.append(.cacheEntryAdded(id: id, scope: entry.scope))
        return (id, replaced)
    }

    static let entryColumns =
        "id, scope, exact_key, prompt, messages, answer, finish_reason, embedding, created_at, expires_at, last_hit_at, hits, teacher_log_id"

    static func entry(_ row: PostgresRow) throws -> CacheEntryRecord {
        let (id, scope, exactKey, prompt, messages, answer, finishReason, embedding, createdAt, expiresAt, lastHitAt, hits, logID) =
            try row.decode((Int64, String, String, String, String, String, String, Data, Date, Date?, Date?, Int, Int64?).self)
        var entry = CacheEntryRecord(
            scope: scope, exactKey: exactKey, prompt: prompt, messages: messages, answer: answer, finishReason: finishReason,
            vector: [], createdAt: createdAt, expiresAt: expiresAt)
        entry.id = id
        entry.embedding = embedding
        entry.lastHitAt = lastHitAt
        entry.hits = hits
        entry.teacherLogID = logID
        return entry
    }

    static func key(_ row: PostgresRow) throws -> CacheEntryKey {
        let (id, scope, exactKey, expiresAt) = try row.decode((Int64, String, String, Date?).self)
        return CacheEntryKey(id: id, scope: scope, exactKey: exactKey, expiresAt: expiresAt)
    }

    public func cacheEntry(id: Int64) async throws -> CacheEntryRecord? {
        try await query("SELECT \(unescaped: Self.entryColumns) FROM cache_entries WHERE id = \(id)", logger: logger)
            .all(Self.entry).first
    }

    public func cacheEntryKeys() async throws -> [CacheEntryKey] {
        try await query("SELECT id, scope, exact_key, expires_at FROM cache_entries", logger: logger).all(Self.key)
    }

    public func cacheScopes() async throws -> [String: Int] {
        Dictionary(
            uniqueKeysWithValues: try await query("SELECT scope, count(*) FROM cache_entries GROUP BY scope", logger: logger)
                .all { try $0.decode((String, Int).self) })
    }

    public func cacheVectors(scope: String, after id: Int64) async throws -> [(id: Int64, vector: [Float])] {
        try await query(
            "SELECT id, embedding FROM cache_entries WHERE scope = \(scope) AND id > \(id) AND length(embedding) > 0 ORDER BY id", logger: logger
        ).all(Self.vector)
    }

    public func indexedCacheEntryIDs(scope: String) async throws -> Set<Int64> {
        Set(
            try await query("SELECT id FROM cache_entries WHERE scope = \(scope) AND length(embedding) > 0", logger: logger)
                .all { try $0.decode(Int64.self) })
    }

    public func cacheVectors(ids: Set<Int64>) async throws -> [(id: Int64, vector: [Float])] {
        guard !ids.isEmpty else { return [] }
        return try await query("SELECT id, embedding FROM cache_entries WHERE id = ANY(\(Array(ids))) AND length(embedding) > 0", logger: logger)
            .all(Self.vector)
    }

    private static func vector(_ row: PostgresRow) throws -> (id: Int64, vector: [Float]) {
        let (id, embedding) = try row.decode((Int64, Data).self)
        return (id, CacheEntryRecord.decode(embedding))
    }

    public func cacheEntries(scope: String?, after id: Int64, limit: Int) async throws -> [CacheEntryRecord] {
        try await query(
            """
            SELECT \(unescaped: Self.entryColumns) FROM cache_entries
            WHERE id > \(id) AND (\(scope)::text IS NULL OR scope = \(scope)) ORDER BY id LIMIT \(limit)
            """,
            logger: logger
        ).all(Self.entry)
    }

    public func cacheEntryCount() async throws -> Int {
        try await query("SELECT count(*) FROM cache_entries", logger: logger).all { try $0.decode(Int.self) }[0]
    }

    /// Runs a `DELETE … RETURNING id, scope, exact_key, expires_at` and records what went away in the feed.
    private func delete(_ statement: PostgresQuery) async throws -> [CacheEntryKey] {
        try await write { [self] connection in
            let keys = try await connection.query(statement, logger: logger).all(Self.key)
            try await log(keys.map { .cacheEntryRemoved($0) }, on: connection)
            return keys
        }
    }

    public func deleteCacheEntries(ids: [Int64]) async throws -> [CacheEntryKey] {
        guard !ids.isEmpty else { return [] }
        return try await delete("DELETE FROM cache_entries WHERE id = ANY(\(ids)) RETURNING id, scope, exact_key, expires_at")
    }

    public func purgeCacheEntries(scope: String?, createdBefore date: Date?) async throws -> [CacheEntryKey] {
        try await delete(
            """
            DELETE FROM cache_entries
            WHERE (\(scope)::text IS NULL OR scope = \(scope)) AND (\(date)::timestamptz IS NULL OR created_at < \(date))
            RETURNING id, scope, exact_key, expires_at
            """)
    }

    public func deleteExpiredCacheEntries(now: Date, limit: Int) async throws -> [CacheEntryKey] {
        try await delete(
            """
            DELETE FROM cache_entries WHERE id IN (SELECT id FROM cache_entries WHERE expires_at <= \(now) LIMIT \(limit))
            RETURNING id, scope, exact_key, expires_at
            """)
    }

    public func evictLeastRecentlyUsed(count: Int) async throws -> [CacheEntryKey] {
        guard count > 0 else { return [] }
        return try await delete(
            """
            DELETE FROM cache_entries WHERE id IN
              (SELECT id FROM cache_entries ORDER BY coalesce(last_hit_at, created_at), id LIMIT \(count))
            RETURNING id, scope, exact_key, expires_at
            """)
    }

    /// Adds batched hit counts and last-hit times, in one statement. Not in the feed: hits change
    /// no node's maps or indexes.
    public func recordCacheHits(_ hits: [Int64: (count: Int, last: Date)]) async throws {
        guard !hits.isEmpty else { return }
        // In id order: two nodes flushing hits of the same entries lock their rows in one order.
        let sorted = hits.sorted { $0.key < $1.key }
        try await query(
            """
            UPDATE cache_entries c SET hits = c.hits + h.n, last_hit_at = greatest(c.last_hit_at, h.last)
            FROM (SELECT * FROM unnest(\(sorted.map(\.key))::bigint[], \(sorted.map(\.value.count))::bigint[], \(sorted.map(\.value.last))::timestamptz[]) AS u(id, n, last) ORDER BY id) h
            WHERE c.id = h.id
            """,
            logger: logger
        ).drain()
    }

    public func replaceCacheVectors(_ vectors: [(id: Int64, vector: [Float])]) async throws {
        guard !vectors.isEmpty else { return }
        try await transaction { [self] connection in
            for (id, vector) in vectors {
                try await connection.query(
                    "UPDATE cache_entries SET embedding = \(CacheEntryRecord.encode(vector)) WHERE id = \(id)", logger: logger
                ).drain()
            }
        }
    }

    // MARK: Index snapshots

    public func saveIndexSnapshot(scope: String, watermark: Int64, bytes: [UInt8]) async throws {
        try await query(
            """
            INSERT INTO index_snapshots (scope, watermark, snapshot, created_at) VALUES (\(scope), \(watermark), \(Data(bytes)), now())
            ON CONFLICT (scope) DO UPDATE SET watermark = excluded.watermark, snapshot = excluded.snapshot, created_at = excluded.created_at
            """,
            logger: logger
        ).drain()
    }

    public func indexSnapshot(scope: String) async throws -> (watermark: Int64, bytes: [UInt8])? {
        try await query("SELECT watermark, snapshot FROM index_snapshots WHERE scope = \(scope)", logger: logger).all { row in
            let (watermark, snapshot) = try row.decode((Int64, Data).self)
            return (watermark: watermark, bytes: [UInt8](snapshot))
        }.first
    }

    public func deleteIndexSnapshots() async throws {
        try await query("DELETE FROM index_snapshots", logger: logger).drain()
    }

    // MARK: Scope settings and metadata

    public func scopeSettings() async throws -> [String: (similarityThreshold: Double?, ttlSeconds: Double?)] {
        var settings: [String: (similarityThreshold: Double?, ttlSeconds: Double?)] = [:]
        for (scope, threshold, ttl) in try await query(
            "SELECT scope, similarity_threshold, ttl_seconds FROM scope_settings", logger: logger
        ).all({ try $0.decode((String, Double?, Double?).self) }) {
            settings[scope] = (threshold, ttl)
        }
        return settings
    }

    /// The other nodes hear of it as one change of the scope's settings.
    public func configureScope(_ scope: String, _ overrides: ScopeOverrides, entryLifetime: Double?) async throws {
        try await write { [self] connection in
            if overrides.similarityThreshold == nil, overrides.ttlSeconds == nil {
                try await connection.query("DELETE FROM scope_settings WHERE scope = \(scope)", logger: logger).drain()
            } else {
                try await connection.query(
                    """
                    INSERT INTO scope_settings (scope, similarity_threshold, ttl_seconds)
                    VALUES (\(scope), \(overrides.similarityThreshold), \(overrides.ttlSeconds))
                    ON CONFLICT (scope) DO UPDATE SET similarity_threshold = excluded.similarity_threshold, ttl_seconds = excluded.ttl_seconds
                    """,
                    logger: logger
                ).drain()
            }
            if let maxError = overrides.maxError {
                try await connection.query(
                    """
                    INSERT INTO scope_max_errors (scope, max_error) VALUES (\(scope), \(maxError))
                    ON CONFLICT (scope) DO UPDATE SET max_error = excluded.max_error
                    """,
                    logger: logger
                ).drain()
            } else {
                try await connection.query("DELETE FROM scope_max_errors WHERE scope = \(scope)", logger: logger).drain()
            }
            try await connection.query(
                """
                UPDATE cache_entries SET expires_at = CASE WHEN \(entryLifetime)::double precision IS NULL THEN NULL
                  ELSE created_at + make_interval(secs => \(entryLifetime)) END
                WHERE scope = \(scope)
                """,
                logger: logger
            ).drain()
            try await log([.scopeSettingsChanged(scope: scope)], on: connection)
        }
    }

    public func metadata(_ key: String) async throws -> String? {
        try await query("SELECT value FROM meta WHERE key = \(key)", logger: logger).all { try $0.decode(String.self) }.first
    }

    public func setMetadata(_ key: String, _ value: String) async throws {
        try await query(
            "INSERT INTO meta (key, value) VALUES (\(key), \(value)) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            logger: logger
        ).drain()
    }
}
