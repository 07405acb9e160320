import Foundation
import SQLiteStore
import Storage
import Testing

@Suite struct CacheEntryTests {
    let store: SQLiteStore
    let t0 = Date(timeIntervalSince1970: 1_800_000_000)

    init() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("distill-cache-\(UUID().uuidString)")
        store = try SQLiteStore(path: directory.appendingPathComponent("distill.sqlite").path)
    }

    func exchange(_ n: Int) -> TeacherLogRecord {
        TeacherLogRecord(
            createdAt: t0, requestID: "r\(n)", scope: "s", model: "m", messages: "[]", parameters: "{}", prompt: "q\(n)",
            answer: "a\(n)", topLogprobs: nil, promptTokens: nil, completionTokens: nil, latencyMilliseconds: 1,
            streamed: false)
    }

    func entry(_ key: String, scope: String = "s", created: TimeInterval = 0, expires: TimeInterval? = nil) -> CacheEntryRecord {
        CacheEntryRecord(
            scope: scope, exactKey: key, prompt: key, messages: "[]", answer: "answer to \(key)", finishReason: "stop",
            vector: [0.5, -0.25, 1e-7, .pi], createdAt: t0 + created, expiresAt: expires.map { t0 + $0 })
    }

    @Test func anEntryIsCommittedWithItsTeacherExchangeAndKeepsItsVector() async throws {
        let commit = try await store.appendTeacherExchange(exchange(1), cacheEntry: entry("where is my card"))
        let id = try #require(commit.entryID)
        let stored = try #require(try await store.cacheEntry(id: id))
        #expect(stored.vector == [0.5, -0.25, 1e-7, .pi])
        #expect(stored.teacherLogID == commit.logID)
        #expect(stored.hits == 0 && stored.lastHitAt == nil)
        #expect(try await store.cacheVectors(scope: "s").map(\.id) == [id])
        #expect(try await store.cacheScopes() == ["s": 1])
    }

    @Test func theSameScopeAndKeyReplacesTheEntry() async throws {
        let first = try await store.appendTeacherExchange(exchange(1), cacheEntry: entry("k"))
        let second = try await store.appendTeacherExchange(exchange(2), cacheEntry: entry("k"))
        #expect(second.replacedEntryID == first.entryID)
        let other = try await store.appendTeacherExchange(exchange(3), cacheEntry: entry("k", scope: "t"))
        #expect(other.replacedEntryID == nil, "another scope's entry is another entry")
        #expect(try await store.cacheEntryCount() == 2)
        #expect(try await store.teacherLogCount() == 3)
    }

    @Test func expiryEvictionPurgeAndDeletionReportWhatWentAway() async throws {
        var ids: [String: Int64] = [:]
        for (key, created, expires) in [("old", 0.0, 10.0 as Double?), ("mid", 5, nil), ("new", 20, 30)] {
            ids[key] = try await store.appendTeacherExchange(exchange(1), cacheEntry: entry(key, created: created, expires: expires)).entryID
        }
        #expect(try await store.deleteExpiredCacheEntries(now: t0 + 15, limit: 10).map(\.exactKey) == ["old"])

        // "new" was hit, so "mid" is the least recently used.
        try await store.recordCacheHits([ids["new"]!: (count: 3, last: t0 + 25)])
        #expect(try await store.cacheEntry(id: ids["new"]!)?.hits == 3)
        #expect(try await store.evictLeastRecentlyUsed(count: 1).map(\.exactKey) == ["mid"])

        #expect(try await store.deleteCacheEntries(ids: [ids["new"]!, 999]).map(\.id) == [ids["new"]!])
        #expect(try await store.cacheEntryCount() == 0)
    }

    @Test func purgeFiltersByScopeAndAge() async throws {
        _ = try await store.appendTeacherExchange(exchange(1), cacheEntry: entry("a", scope: "s", created: 0))
        _ = try await store.appendTeacherExchange(exchange(2), cacheEntry: entry("b", scope: "s", created: 100))
        _ = try await store.appendTeacherExchange(exchange(3), cacheEntry: entry("c", scope: "t", created: 0))
        #expect(try await store.purgeCacheEntries(scope: "s", createdBefore: t0 + 50).map(\.exactKey) == ["a"])
        #expect(Set(try await store.purgeCacheEntries(scope: nil, createdBefore: nil).map(\.exactKey)) == ["b", "c"])
    }

    @Test func snapshotsAndMetadataRoundTrip() async throws {
        #expect(try await store.indexSnapshot(scope: "s") == nil)
        try await store.saveIndexSnapshot(scope: "s", watermark: 41, bytes: [1, 2, 3])
        try await store.saveIndexSnapshot(scope: "s", watermark: 42, bytes: [4, 5])
        let snapshot = try #require(try await store.indexSnapshot(scope: "s"))
        #expect(snapshot.watermark == 42 && snapshot.bytes == [4, 5])
        try await store.setMetadata("embedding_model", "m@1")
        #expect(try await store.metadata("embedding_model") == "m@1")
        try await store.setScopeSettings(scope: "s", similarityThreshold: 0.95, ttlSeconds: nil)
        #expect(try await store.scopeSettings()["s"]?.similarityThreshold == 0.95)
        try await store.setScopeSettings(scope: "s", similarityThreshold: nil, ttlSeconds: nil)
        #expect(try await store.scopeSettings().isEmpty)
    }
}
