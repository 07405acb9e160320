import GRDB
import Storage

extension SQLiteStore {
    /// The schema, one migration per change. Never edit a shipped migration: add the next one.
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1: teacher log") { db in
            try db.create(table: "teacher_log") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("created_at", .datetime).notNull()
                t.column("request_id", .text).notNull()
                t.column("scope", .text).notNull()
                t.column("model", .text).notNull()
                t.column("messages", .text).notNull()
                t.column("parameters", .text).notNull()
                t.column("prompt", .text).notNull()
                t.column("answer", .text).notNull()
                t.column("top_logprobs", .text)
                t.column("prompt_tokens", .integer)
                t.column("completion_tokens", .integer)
                t.column("latency_ms", .double).notNull()
                t.column("streamed", .boolean).notNull()
            }
            try db.create(index: "teacher_log_by_scope", on: "teacher_log", columns: ["scope", "id"])
        }
        migrator.registerMigration("v2: semantic cache") { db in
            try db.create(table: "cache_entries") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("scope", .text).notNull()
                t.column("exact_key", .text).notNull()
                t.column("prompt", .text).notNull()
                t.column("messages", .text).notNull()
                t.column("answer", .text).notNull()
                t.column("finish_reason", .text).notNull()
                t.column("embedding", .blob).notNull()
                t.column("created_at", .datetime).notNull()
                t.column("expires_at", .datetime)
                t.column("last_hit_at", .datetime)
                t.column("hits", .integer).notNull().defaults(to: 0)
                t.column("teacher_log_id", .integer).references("teacher_log", onDelete: .setNull)
                t.uniqueKey(["scope", "exact_key"])
            }
            try db.create(index: "cache_entries_by_scope", on: "cache_entries", columns: ["scope", "id"])
            try db.create(index: "cache_entries_by_expiry", on: "cache_entries", columns: ["expires_at"])
            // Least recently used first: never-hit entries by creation time.
            try db.execute(sql: "CREATE INDEX cache_entries_by_recency ON cache_entries(coalesce(last_hit_at, created_at))")
            try db.create(table: "index_snapshots") { t in
                t.primaryKey("scope", .text)
                t.column("watermark", .integer).notNull()
                t.column("snapshot", .blob).notNull()
                t.column("created_at", .datetime).notNull()
            }
            // Per-scope overrides of the cache's global settings (null: the global value).
            try db.create(table: "scope_settings") { t in
                t.primaryKey("scope", .text)
                t.column("similarity_threshold", .double)
                t.column("ttl_seconds", .double)
            }
            try db.create(table: "meta") { t in
                t.primaryKey("key", .text)
                t.column("value", .text).notNull()
            }
        }
        migrator.registerMigration("v3: student") { db in
            // The request's embedding, when the request path computed one: training data for the
            // student that needs no second pass through the encoder.
            try db.alter(table: "teacher_log") { t in t.add(column: "embedding", .blob) }
            try db.create(table: "student_versions") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("scope", .text).notNull()
                t.column("created_at", .datetime).notNull()
                // candidate, active, retired (was active), rejected (failed the gate)
                t.column("status", .text).notNull()
                t.column("model", .blob).notNull()
                t.column("metrics", .text).notNull()
                // The newest teacher-log row the version was trained or evaluated on.
                t.column("trained_through", .integer).notNull()
                t.column("training_seconds", .double).notNull()
            }
            try db.create(index: "student_versions_by_scope", on: "student_versions", columns: ["scope", "status"])
        }
        migrator.registerMigration("v4: cache verification") { db in
            // A scope's own error bound δ (null row: the global cache.max_error).
            try db.create(table: "scope_max_errors") { t in
                t.primaryKey("scope", .text)
                t.column("max_error", .double).notNull()
            }
            // What the verified cache learned, as JSON the store does not read.
            try db.create(table: "cache_scope_beliefs") { t in
                t.primaryKey("scope", .text)
                t.column("belief", .blob).notNull()
            }
            try db.create(table: "cache_entry_beliefs") { t in
                t.primaryKey("entry_id", .integer).references("cache_entries", onDelete: .cascade)
                t.column("scope", .text).notNull()
                t.column("belief", .blob).notNull()
            }
        }
        return migrator
    }
}
