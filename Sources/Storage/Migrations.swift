import GRDB

extension Store {
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
        return migrator
    }
}
