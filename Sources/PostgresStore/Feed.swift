import Foundation
import PostgresNIO
import Storage

extension PostgresStore {
    /// The `meta` key of the newest change pruned.
    static let prunedThroughKey = "changes_pruned_through"

    /// The newest change id, or the newest pruned when every change has been pruned.
    public func latestChangeID() async throws -> Int64 {
        try await query(
            """
            SELECT greatest((SELECT coalesce(max(id), 0) FROM changes),
                            (SELECT coalesce(max(value::bigint), 0) FROM meta WHERE key = \(Self.prunedThroughKey)))
            """,
            logger: logger
        ).all { try $0.decode(Int64.self) }.first ?? 0
    }

    public func changes(after id: Int64, limit: Int) async throws -> [FeedEntry] {
        let prunedThrough = try await query(
            "SELECT value::bigint FROM meta WHERE key = \(Self.prunedThroughKey)", logger: logger
        ).all { try $0.decode(Int64.self) }.first ?? 0
        guard id >= prunedThrough else { throw FeedGap(position: id, prunedThrough: prunedThrough) }
        return try await query(
            "SELECT id, node, kind, scope, entry_id, exact_key FROM changes WHERE id > \(id) ORDER BY id LIMIT \(limit)",
            logger: logger
        ).all { row in
            let (id, node, kind, scope, entryID, exactKey) = try row.decode((Int64, String, String, String, Int64, String).self)
            guard let change = Self.change(kind: kind, scope: scope, entryID: entryID, exactKey: exactKey) else { return nil }
            return FeedEntry(id: id, node: node, change: change)
        }.compactMap { $0 }
    }

    public func recordPosition(_ id: Int64) async throws {
        try await query(
            """
            INSERT INTO nodes (node, applied_through, seen_at) VALUES (\(nodeID), \(id), now())
            ON CONFLICT (node) DO UPDATE SET applied_through = excluded.applied_through, seen_at = excluded.seen_at
            """,
            logger: logger
        ).drain()
    }

    public func pruneChanges(createdBefore date: Date) async throws -> Int {
        try await transaction { [logger] connection in
            // A node follows while connected (its connections carry its name) or while heard from
            // since `date`; a node gone longer stops holding the feed back, and finds the gap if it returns.
            let (count, newest) = try await connection.query(
                """
                WITH following AS (
                  SELECT applied_through FROM nodes
                  WHERE seen_at >= \(date)
                     OR left(node, 63) IN (SELECT application_name FROM pg_stat_activity WHERE datname = current_database())),
                pruned AS (
                  DELETE FROM changes
                  WHERE created_at < \(date) AND id <= (SELECT coalesce(min(applied_through), 0) FROM following)
                  RETURNING id)
                SELECT count(*), coalesce(max(id), 0) FROM pruned
                """,
                logger: logger
            ).all { try $0.decode((Int64, Int64).self) }.first ?? (Int64(0), Int64(0))
            if count > 0 {
                try await connection.query(
                    """
                    INSERT INTO meta (key, value) VALUES (\(Self.prunedThroughKey), \(String(newest)))
                    ON CONFLICT (key) DO UPDATE SET value = greatest(meta.value::bigint, excluded.value::bigint)::text
                    """,
                    logger: logger
                ).drain()
            }
            return Int(count)
        }
    }

    /// One node as the cluster sees it.
    public struct NodeState: Sendable, Equatable {
        public var node: String
        /// Changes committed that it had not applied when it last said where it stood.
        public var lag: Int64
        public var seenAt: Date
        /// Whether it is connected now.
        public var connected: Bool
        public var leader: Bool
    }

    /// Every node that has followed the feed, newest first, with its lag behind the feed and
    /// whether it is connected and leads now (from PostgreSQL's own activity and lock tables).
    public func clusterState() async throws -> [NodeState] {
        let (leader, _) = try await leadershipState()
        let latest = try await latestChangeID()
        let connected = Set(
            try await query("SELECT DISTINCT application_name FROM pg_stat_activity WHERE datname = current_database()", logger: logger)
                .all { try $0.decode(String.self) })
        return try await query("SELECT node, applied_through, seen_at FROM nodes ORDER BY seen_at DESC", logger: logger).all { row in
            let (node, position, seen) = try row.decode((String, Int64, Date).self)
            let name = String(decoding: Array(node.utf8.prefix(63)), as: UTF8.self)
            return NodeState(node: node, lag: max(0, latest - position), seenAt: seen, connected: connected.contains(name), leader: leader == name)
        }
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
