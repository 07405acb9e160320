import Foundation
import SQLiteStore
import Storage
import Testing

/// What the verified cache learned, and the scopes' error bounds, as the store keeps them.
@Suite struct CacheBeliefTests {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("distill-beliefs-\(UUID().uuidString)/distill.sqlite").path

    func entry(_ key: String) -> CacheEntryRecord {
        CacheEntryRecord(
            scope: "s", exactKey: key, prompt: key, messages: "[]", answer: "answer to \(key)", finishReason: "stop",
            vector: [1, 0], createdAt: Date(timeIntervalSince1970: 1_800_000_000), expiresAt: nil)
    }

    func sorted(_ beliefs: [CacheBeliefRecord]) -> [CacheBeliefRecord] {
        beliefs.sorted { ($0.entryID ?? 0, $0.scope) < ($1.entryID ?? 0, $1.scope) }
    }

    @Test func beliefsAreReplacedSurviveAReopenAndGoWithTheirEntries() async throws {
        var store = try SQLiteStore(path: path)
        let ids = try await store.insertCacheEntries([entry("a"), entry("b")]).map(\.id)
        try await store.saveCacheBeliefs([
            CacheBeliefRecord(scope: "s", entryID: nil, belief: Data("scope 1".utf8)),
            CacheBeliefRecord(scope: "s", entryID: ids[0], belief: Data("a 1".utf8)),
            CacheBeliefRecord(scope: "s", entryID: ids[1], belief: Data("b 1".utf8)),
            CacheBeliefRecord(scope: "s", entryID: 999, belief: Data("no such entry".utf8)),
        ])
        try await store.saveCacheBeliefs([CacheBeliefRecord(scope: "s", entryID: nil, belief: Data("scope 2".utf8))])
        try store.close()

        store = try SQLiteStore(path: path)
        #expect(sorted(try await store.cacheBeliefs()) == [
            CacheBeliefRecord(scope: "s", entryID: nil, belief: Data("scope 2".utf8)),
            CacheBeliefRecord(scope: "s", entryID: ids[0], belief: Data("a 1".utf8)),
            CacheBeliefRecord(scope: "s", entryID: ids[1], belief: Data("b 1".utf8)),
        ])
        _ = try await store.deleteCacheEntries(ids: [ids[0]])
        // Replacing an entry (same exact key) deletes the old one: its belief goes too.
        _ = try await store.insertCacheEntries([entry("b")])
        #expect(try await store.cacheBeliefs() == [CacheBeliefRecord(scope: "s", entryID: nil, belief: Data("scope 2".utf8))])
        try store.close()
    }
}
