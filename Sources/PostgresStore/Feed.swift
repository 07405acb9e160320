import Foundation
import PostgresNIO
import Storage

extension PostgresStore {
    public func latestChangeID() async throws -> Int64 {
        try await query("SELECT coalesce(max(id), 0) FROM changes", logger: logger).all { try $0.decode(Int64.self) }.first ?? 0
    }

    public func changes(after id: Int64, limit: Int) async throws -> [FeedEntry] {
        try await query(
            "SELECT id, node, kind, scope, entry_id, exact_key FROM changes WHERE id > \(id) ORDER BY id LIMIT \(limit)",
            logger: logger
        ).all { row in
            let (id, node, kind, scope, entryID, exactKey) = try row.decode((Int64, String, String, String, Int64, String).self)
            guard let change = Self.change(kind: kind, scope: scope, entryID: entryID, exactKey: exactKey) else { return nil }
            return FeedEntry(id: id, node: node, change: change)
        }.compactMap { $0 }
    }

    public func feedWakeups() -> AsyncStream<Void> {
        subscribe(feed: true)
    }

    /// A change as the `changes` table's columns.
    static func columns(of change: StoreChange) -> (kind: String, scope: String, entryID: Int64, exactKey: String) {
        switch change {
        case .cacheEntryAdded(let id, let scope): ("entry_added", scope, id, "")
        case .cacheEntryRemoved(let key): ("entry_removed", key.scope, key.id, key.exactKey)
        case .scopeSettingsChanged(let scope): ("scope_settings", scope, 0, "")
        case .teacherLogAppended(let scope): ("teacher_log", scope, 0, "")
        case .studentVersionsChanged(let scope): ("student_versions", scope, 0, "")
        }
    }

    /// The change a row of the `changes` table records; nil for a kind a newer distilld wrote.
    static func change(kind: String, scope: String, entryID: Int64, exactKey: String) -> StoreChange? {
        switch kind {
        case "entry_added": .cacheEntryAdded(id: entryID, scope: scope)
        case "entry_removed": .cacheEntryRemoved(CacheEntryKey(id: entryID, scope: scope, exactKey: exactKey, expiresAt: nil))
        case "scope_settings": .scopeSettingsChanged(scope: scope)
        case "teacher_log": .teacherLogAppended(scope: scope)
        case "student_versions": .studentVersionsChanged(scope: scope)
        default: nil
        }
    }
}
