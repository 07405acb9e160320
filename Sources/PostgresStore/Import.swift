import Foundation
import PostgresNIO
import Storage

extension PostgresStore {
    /// Copies another store (a node's SQLite database) into this one, which must be empty: every
    /// row keeps its id (cache entries name their teacher-log rows, student versions the row they
    /// were trained through), in one transaction: all of it is copied, or nothing.
    /// `metadataKeys`: the metadata to carry over (the stores' key–value metadata has no listing).
    public func importRows(
        from source: any DistillStore, metadataKeys: [String], progress: @escaping @Sendable (String) -> Void
    ) async throws -> BackupSummary {
        let logger = logger
        // Whole, in one transaction: no operation deadline (the copy takes as long as it takes).
        return try await client.withTransaction(logger: logger) { connection in
            try await connection.query("SELECT pg_advisory_xact_lock(\(Self.feedLock))", logger: logger).drain()
            let existing = try await connection.query(
                "SELECT (SELECT count(*) FROM teacher_log) + (SELECT count(*) FROM cache_entries) + (SELECT count(*) FROM student_versions)",
                logger: logger
            ).all { try $0.decode(Int64.self) }[0]
            guard existing == 0 else {
                throw StoreError.cannotOpen(path: self.location, reason: "it already holds rows: import into an empty database only")
            }
            var logRows: Int64 = 0
            var after: Int64 = 0
            while true {
                let page = try await source.teacherLog(after: after, limit: 1000)
                guard let last = page.last?.id else { break }
                for record in page {
                    try await connection.query(
                        """
                        INSERT INTO teacher_log
                          (id, created_at, request_id, scope, model, messages, parameters, prompt, answer, top_logprobs,
                           prompt_tokens, completion_tokens, latency_ms, streamed, embedding)
                        VALUES (\(record.id), \(record.createdAt), \(record.requestID), \(record.scope), \(record.model),
                          \(record.messages), \(record.parameters), \(record.prompt), \(record.answer), \(record.topLogprobs),
                          \(record.promptTokens), \(record.completionTokens), \(record.latencyMilliseconds), \(record.streamed),
                          \(record.embedding))
                        """,
                        logger: logger
                    ).drain()
                }
                logRows += Int64(page.count)
                after = last
                progress("teacher log: \(logRows) rows")
            }
            var entries: Int64 = 0
            after = 0
            while true {
                let page = try await source.cacheEntries(scope: nil, after: after, limit: 1000)
                guard let last = page.last?.id else { break }
                for entry in page {
                    try await connection.query(
                        """
                        INSERT INTO cache_entries
                          (id, scope, exact_key, prompt, messages, answer, finish_reason, embedding, created_at, expires_at,
                           last_hit_at, hits, teacher_log_id)
                        VALUES (\(entry.id), \(entry.scope), \(entry.exactKey), \(entry.prompt), \(entry.messages), \(entry.answer),
                          \(entry.finishReason), \(entry.embedding), \(entry.createdAt), \(entry.expiresAt), \(entry.lastHitAt),
                          \(entry.hits), \(entry.teacherLogID))
                        """,
                        logger: logger
                    ).drain()
                }
                entries += Int64(page.count)
                after = last
                progress("cache entries: \(entries)")
            }
            for listed in try await source.studentVersions(scope: nil).reversed() {
                guard let id = listed.id, let version = try await source.studentVersion(id: id) else { continue }
                try await connection.query(
                    """
                    INSERT INTO student_versions (id, scope, created_at, status, model, metrics, trained_through, training_seconds)
                    VALUES (\(id), \(version.scope), \(version.createdAt), \(version.status.rawValue), \(version.model),
                      \(version.metrics), \(version.trainedThrough), \(version.trainingSeconds))
                    """,
                    logger: logger
                ).drain()
            }
            for (scope, settings) in try await source.scopeSettings() {
                try await connection.query(
                    "INSERT INTO scope_settings (scope, similarity_threshold, ttl_seconds) VALUES (\(scope), \(settings.similarityThreshold), \(settings.ttlSeconds))",
                    logger: logger
                ).drain()
            }
            for (scope, maxError) in try await source.scopeMaxErrors() {
                try await connection.query(
                    "INSERT INTO scope_max_errors (scope, max_error) VALUES (\(scope), \(maxError))", logger: logger
                ).drain()
            }
            // What the verified cache learned; an entry's belief only with its entry.
            for belief in try await source.cacheBeliefs() {
                if let id = belief.entryID {
                    try await connection.query(
                        """
                        INSERT INTO cache_entry_beliefs (entry_id, scope, belief)
                        SELECT \(id), \(belief.scope), \(belief.belief) WHERE EXISTS (SELECT 1 FROM cache_entries WHERE id = \(id))
                        """,
                        logger: logger
                    ).drain()
                } else {
                    try await connection.query(
                        "INSERT INTO cache_scope_beliefs (scope, belief) VALUES (\(belief.scope), \(belief.belief))", logger: logger
                    ).drain()
                }
            }
            for key in metadataKeys {
                guard let value = try await source.metadata(key) else { continue }
                try await connection.query(
                    "INSERT INTO meta (key, value) VALUES (\(key), \(value)) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    logger: logger
                ).drain()
            }
            for scope in try await source.cacheScopes().keys {
                guard let snapshot = try await source.indexSnapshot(scope: scope) else { continue }
                try await connection.query(
                    "INSERT INTO index_snapshots (scope, watermark, snapshot, created_at) VALUES (\(scope), \(snapshot.watermark), \(Data(snapshot.bytes)), now())",
                    logger: logger
                ).drain()
            }
            // New rows continue after the copied ids.
            for table in ["teacher_log", "cache_entries", "student_versions"] {
                try await connection.query(
                    PostgresQuery(
                        unsafeSQL:
                            "SELECT setval(pg_get_serial_sequence('\(table)', 'id'), coalesce((SELECT max(id) FROM \(table)), 0) + 1, false)"),
                    logger: logger
                ).drain()
            }
            return BackupSummary(bytes: 0, teacherLogRows: logRows, cacheEntries: entries)
        }
    }
}
