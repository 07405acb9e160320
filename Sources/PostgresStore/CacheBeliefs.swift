import Foundation
import PostgresNIO
import Storage

/// The verified cache's error bounds and what it learned. Nodes merge what they learned into the
/// stored beliefs one at a time (`mergeCacheBeliefs`), so that none overwrites another's lessons.
extension PostgresStore {
    public func scopeMaxErrors() async throws -> [String: Double] {
        var bounds: [String: Double] = [:]
        for (scope, maxError) in try await query("SELECT scope, max_error FROM scope_max_errors", logger: logger).all({
            try $0.decode((String, Double).self)
        }) {
            bounds[scope] = maxError
        }
        return bounds
    }

    public func cacheBeliefs() async throws -> [CacheBeliefRecord] {
        let scopes = try await query("SELECT scope, belief FROM cache_scope_beliefs", logger: logger).all { row in
            let (scope, belief) = try row.decode((String, Data).self)
            return CacheBeliefRecord(scope: scope, entryID: nil, belief: belief)
        }
        let entries = try await query("SELECT entry_id, scope, belief FROM cache_entry_beliefs", logger: logger).all { row in
            let (id, scope, belief) = try row.decode((Int64, String, Data).self)
            return CacheBeliefRecord(scope: scope, entryID: id, belief: belief)
        }
        return scopes + entries
    }

    /// The advisory lock that serializes the nodes' merges (an arbitrary constant, the same on every node).
    static let beliefsLock: Int64 = 0x6469_7374_696c_6c03

    public func mergeCacheBeliefs(
        scopes: Set<String>, entries: Set<Int64>, _ merge: @escaping @Sendable ([CacheBeliefRecord]) throws -> [CacheBeliefRecord]
    ) async throws -> [CacheBeliefRecord] {
        try await transaction { [logger] connection in
            // Held until commit: the next merge reads what this one wrote.
            try await connection.query("SELECT pg_advisory_xact_lock(\(Self.beliefsLock))", logger: logger).drain()
            let storedScopes = try await connection.query(
                "SELECT scope, belief FROM cache_scope_beliefs WHERE scope = ANY(\(Array(scopes))::text[])", logger: logger
            ).all { row in
                let (scope, belief) = try row.decode((String, Data).self)
                return CacheBeliefRecord(scope: scope, entryID: nil, belief: belief)
            }
            let storedEntries = try await connection.query(
                "SELECT entry_id, scope, belief FROM cache_entry_beliefs WHERE entry_id = ANY(\(Array(entries))::bigint[])", logger: logger
            ).all { row in
                let (id, scope, belief) = try row.decode((Int64, String, Data).self)
                return CacheBeliefRecord(scope: scope, entryID: id, belief: belief)
            }
            let merged = try merge(storedScopes + storedEntries)
            for belief in merged {
                if let id = belief.entryID {
                    // Only while the entry exists: one deleted since it learned takes its belief with it.
                    try await connection.query(
                        """
                        INSERT INTO cache_entry_beliefs (entry_id, scope, belief)
                        SELECT \(id), \(belief.scope), \(belief.belief) WHERE EXISTS (SELECT 1 FROM cache_entries WHERE id = \(id))
                        ON CONFLICT (entry_id) DO UPDATE SET belief = excluded.belief
                        """,
                        logger: logger
                    ).drain()
                } else {
                    try await connection.query(
                        """
                        INSERT INTO cache_scope_beliefs (scope, belief) VALUES (\(belief.scope), \(belief.belief))
                        ON CONFLICT (scope) DO UPDATE SET belief = excluded.belief
                        """,
                        logger: logger
                    ).drain()
                }
            }
            return merged
        }
    }
}
