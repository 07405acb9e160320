import Foundation
import GRDB
import Storage

extension SQLiteStore {
    public func scopeMaxErrors() async throws -> [String: Double] {
        try await pool.read { db in
            Dictionary(
                uniqueKeysWithValues: try Row.fetchAll(db, sql: "SELECT scope, max_error FROM scope_max_errors")
                    .map { ($0["scope"] as String, $0["max_error"] as Double) })
        }
    }

    public func cacheBeliefs() async throws -> [CacheBeliefRecord] {
        try await pool.read { db in
            let scopes = try Row.fetchAll(db, sql: "SELECT scope, belief FROM cache_scope_beliefs").map {
                CacheBeliefRecord(scope: $0["scope"], entryID: nil, belief: $0["belief"])
            }
            let entries = try Row.fetchAll(db, sql: "SELECT entry_id, scope, belief FROM cache_entry_beliefs").map {
                CacheBeliefRecord(scope: $0["scope"], entryID: $0["entry_id"], belief: $0["belief"])
            }
            return scopes + entries
        }
    }

    public func mergeCacheBeliefs(
        scopes: Set<String>, entries: Set<Int64>, _ merge: @escaping @Sendable ([CacheBeliefRecord]) throws -> [CacheBeliefRecord]
    ) async throws -> [CacheBeliefRecord] {
        try await pool.write { db in
            let storedScope = try db.cachedStatement(sql: "SELECT belief FROM cache_scope_beliefs WHERE scope = ?")
            let storedEntry = try db.cachedStatement(sql: "SELECT scope, belief FROM cache_entry_beliefs WHERE entry_id = ?")
            var stored: [CacheBeliefRecord] = []
            for scope in scopes {
                if let row = try Row.fetchOne(storedScope, arguments: [scope]) {
                    stored.append(CacheBeliefRecord(scope: scope, entryID: nil, belief: row["belief"]))
                }
            }
            for id in entries {
                if let row = try Row.fetchOne(storedEntry, arguments: [id]) {
                    stored.append(CacheBeliefRecord(scope: row["scope"], entryID: id, belief: row["belief"]))
                }
            }
            let merged = try merge(stored)
            let scope = try db.cachedStatement(sql: "INSERT OR REPLACE INTO cache_scope_beliefs (scope, belief) VALUES (?, ?)")
            // Only while the entry exists: one deleted since it learned takes its belief with it.
            let entry = try db.cachedStatement(
                sql: """
                    INSERT OR REPLACE INTO cache_entry_beliefs (entry_id, scope, belief)
                    SELECT ?1, ?2, ?3 WHERE EXISTS (SELECT 1 FROM cache_entries WHERE id = ?1)
                    """)
            for belief in merged {
                if let id = belief.entryID {
                    try entry.execute(arguments: [id, belief.scope, belief.belief])
                } else {
                    try scope.execute(arguments: [belief.scope, belief.belief])
                }
            }
            return merged
        }
    }
}
