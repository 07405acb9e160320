// Swift Testing exists only in a build with tests (`swift build --build-tests`): a plain
// `swift build`, such as `make build`'s release build, builds this target empty.
#if canImport(Testing)
import Foundation
import Storage
import Testing

/// One behaviour every `DistillStore` has, checked on a new, empty store. Each store's test target
/// runs every case against its own store (`@Test(arguments: StoreCase.all)`).
public struct StoreCase: Sendable, CustomTestStringConvertible {
    public let name: String
    public let check: @Sendable (any DistillStore) async throws -> Void

    public var testDescription: String { name }

    init(_ name: String, _ check: @escaping @Sendable (any DistillStore) async throws -> Void) {
        self.name = name
        self.check = check
    }
}

let t0 = Date(timeIntervalSince1970: 1_800_000_000)

func exchange(_ n: Int, scope: String = "s", vector: [Float]? = nil) -> TeacherLogRecord {
    TeacherLogRecord(
        createdAt: t0 + Double(n), requestID: "r\(n)", scope: scope, model: "m",
        messages: #"[{"role":"user","content":"q\#(n)"}]"#, parameters: #"{"model":"m"}"#, prompt: "q\(n)", answer: "a\(n)",
        topLogprobs: n.isMultiple(of: 2) ? "[]" : nil, promptTokens: n, completionTokens: nil, latencyMilliseconds: 1.5,
        streamed: n.isMultiple(of: 3), vector: vector)
}

func entry(_ key: String, scope: String = "s", created: TimeInterval = 0, expires: TimeInterval? = nil) -> CacheEntryRecord {
    CacheEntryRecord(
        scope: scope, exactKey: key, prompt: key, messages: "[]", answer: "answer to \(key)", finishReason: "stop",
        vector: [0.5, -0.25, 1e-7, .pi], createdAt: t0 + created, expiresAt: expires.map { t0 + $0 })
}

func version(
    _ scope: String, _ status: StudentVersionRecord.Status = .candidate, through: Int64 = 9, model: Data = Data([1, 2, 3])
) -> StudentVersionRecord {
    StudentVersionRecord(
        scope: scope, createdAt: t0, status: status, model: model, metrics: "{}", trainedThrough: through, trainingSeconds: 1.5)
}

extension StoreCase {
    public static let all: [StoreCase] = teacherLog + cacheEntries + lifetimes + students

    static let teacherLog: [StoreCase] = [
        StoreCase("the teacher log appends and pages in order") { store in
            var ids: [Int64] = []
            for n in 1...5 { ids.append(try await store.appendTeacherExchange(exchange(n))) }
            #expect(ids == ids.sorted() && Set(ids).count == 5)
            #expect(try await store.teacherLogCount() == 5)
            let first = try await store.teacherLog(after: 0, limit: 2)
            let rest = try await store.teacherLog(after: first.last!.id!, limit: 10)
            var expected = (1...5).map { exchange($0) }
            for i in expected.indices { expected[i].id = ids[i] }
            #expect(first + rest == expected)
        },
        StoreCase("every commit to the teacher log is announced by the time it returns") { store in
            var commits = store.teacherLogCommits().makeAsyncIterator()
            for n in 1...3 {
                try await store.appendTeacherExchange(exchange(n))
                let announced: Void? = await commits.next()
                #expect(announced != nil)
            }
        },
        StoreCase("the log keeps embeddings and reports activity per scope") { store in
            let first = try await store.appendTeacherExchange(exchange(1, vector: [1, 2]))
            try await store.appendTeacherExchange(exchange(2))
            let third = try await store.appendTeacherExchange(exchange(3, scope: "t", vector: [3]))
            let rows = try await store.teacherLog(scope: "s")
            #expect(rows.map { $0.embedding.map(CacheEntryRecord.decode) } == [[1, 2], nil])
            try await store.setTeacherLogEmbeddings([(rows[1].id!, [5, 6])])
            #expect(try await store.teacherLog(scope: "s", after: first, limit: 10).first?.embedding.map(CacheEntryRecord.decode) == [5, 6])
            let activity = try await store.teacherLogActivity(after: first)
            #expect(activity["s"]?.count == 1 && activity["t"]?.newest == third)
            try await store.clearTeacherLogEmbeddings()
            #expect(try await store.teacherLog(after: 0, limit: 10).allSatisfy { $0.embedding == nil })
        },
        StoreCase("the latest exchanges of a scope come oldest first") { store in
            var ids: [Int64] = []
            for i in 0..<5 { ids.append(try await store.appendTeacherExchange(exchange(i, scope: i == 2 ? "other" : "s"))) }
            #expect(try await store.latestTeacherLog(scope: "s", limit: 3).map(\.id) == [ids[1], ids[3], ids[4]])
        },
        StoreCase("untrained exchanges are counted from the newest trained-through") { store in
            var ids: [Int64] = []
            for i in 0..<6 { ids.append(try await store.appendTeacherExchange(exchange(i, scope: i < 4 ? "s" : "t"))) }
            var untrained = try await store.untrainedTeacherLog()
            #expect(untrained["s"]?.count == 4 && untrained["s"]?.trained == false && untrained["t"]?.count == 2)
            _ = try await store.addStudentVersion(version("s", .active, through: ids[1], model: Data()))
            _ = try await store.addStudentVersion(version("s", .rejected, through: ids[2], model: Data()))
            untrained = try await store.untrainedTeacherLog()
            #expect(untrained["s"]?.count == 1 && untrained["s"]?.trained == true && untrained["t"]?.trained == false)
        },
    ]

    static let cacheEntries: [StoreCase] = [
        StoreCase("an entry is committed with its teacher exchange and keeps its vector") { store in
            let commit = try await store.appendTeacherExchange(exchange(1), cacheEntry: entry("where is my card"))
            let id = try #require(commit.entryID)
            let stored = try #require(try await store.cacheEntry(id: id))
            #expect(stored.vector == [0.5, -0.25, 1e-7, .pi])
            #expect(stored.teacherLogID == commit.logID)
            #expect(stored.hits == 0 && stored.lastHitAt == nil)
            #expect(try await store.cacheVectors(scope: "s").map(\.id) == [id])
            #expect(try await store.cacheVectors(ids: [id, 999]).map(\.id) == [id])
            #expect(try await store.indexedCacheEntryIDs(scope: "s") == [id])
            #expect(try await store.cacheScopes() == ["s": 1])
            #expect(try await store.cacheEntryKeys() == [CacheEntryKey(id: id, scope: "s", exactKey: "where is my card", expiresAt: nil)])
        },
        StoreCase("the same scope and key replaces the entry") { store in
            let first = try await store.appendTeacherExchange(exchange(1), cacheEntry: entry("k"))
            let second = try await store.appendTeacherExchange(exchange(2), cacheEntry: entry("k"))
            #expect(second.replacedEntryID == first.entryID)
            let other = try await store.appendTeacherExchange(exchange(3), cacheEntry: entry("k", scope: "t"))
            #expect(other.replacedEntryID == nil, "another scope's entry is another entry")
            let imported = try await store.insertCacheEntries([entry("k"), entry("new")])
            #expect(imported[0].replaced == second.entryID && imported[1].replaced == nil)
            #expect(try await store.cacheEntryCount() == 3)
            #expect(try await store.teacherLogCount() == 3)
        },
        StoreCase("expiry, eviction, purge and deletion report what went away") { store in
            var ids: [String: Int64] = [:]
            for (key, created, expires) in [("old", 0.0, 10.0 as Double?), ("mid", 5, nil), ("new", 20, 30)] {
                ids[key] = try await store.appendTeacherExchange(exchange(1), cacheEntry: entry(key, created: created, expires: expires)).entryID
            }
            #expect(try await store.deleteExpiredCacheEntries(now: t0 + 15, limit: 10).map(\.exactKey) == ["old"])
            // "new" was hit, so "mid" is the least recently used.
            try await store.recordCacheHits([ids["new"]!: (count: 3, last: t0 + 25)])
            try await store.recordCacheHits([ids["new"]!: (count: 1, last: t0 + 24)])
            let hit = try await store.cacheEntry(id: ids["new"]!)
            #expect(hit?.hits == 4 && hit?.lastHitAt == t0 + 25)
            #expect(try await store.evictLeastRecentlyUsed(count: 1).map(\.exactKey) == ["mid"])
            #expect(try await store.deleteCacheEntries(ids: [ids["new"]!, 999]).map(\.id) == [ids["new"]!])
            #expect(try await store.cacheEntryCount() == 0)
        },
        StoreCase("purge filters by scope and age") { store in
            _ = try await store.appendTeacherExchange(exchange(1), cacheEntry: entry("a", scope: "s", created: 0))
            _ = try await store.appendTeacherExchange(exchange(2), cacheEntry: entry("b", scope: "s", created: 100))
            _ = try await store.appendTeacherExchange(exchange(3), cacheEntry: entry("c", scope: "t", created: 0))
            #expect(try await store.purgeCacheEntries(scope: "s", createdBefore: t0 + 50).map(\.exactKey) == ["a"])
            #expect(Set(try await store.purgeCacheEntries(scope: nil, createdBefore: nil).map(\.exactKey)) == ["b", "c"])
        },
        StoreCase("entries page by id, in one scope or all") { store in
            for (n, scope) in ["s", "t", "s", "t", "s"].enumerated() {
                _ = try await store.appendTeacherExchange(exchange(n), cacheEntry: entry("k\(n)", scope: scope))
            }
            let firstTwo = try await store.cacheEntries(scope: nil, after: 0, limit: 2)
            #expect(firstTwo.map(\.exactKey) == ["k0", "k1"])
            #expect(try await store.cacheEntries(scope: nil, after: firstTwo[1].id!, limit: 10).map(\.exactKey) == ["k2", "k3", "k4"])
            #expect(try await store.cacheEntries(scope: "s", after: 0, limit: 10).map(\.exactKey) == ["k0", "k2", "k4"])
            let ids = try await store.cacheEntries(scope: "t", after: 0, limit: 10).compactMap(\.id)
            try await store.replaceCacheVectors(ids.map { ($0, [9, 8]) })
            #expect(try await store.cacheVectors(scope: "t").map(\.vector) == [[9, 8], [9, 8]])
        },
        StoreCase("snapshots, settings and metadata round-trip") { store in
            #expect(try await store.indexSnapshot(scope: "s") == nil)
            try await store.saveIndexSnapshot(scope: "s", watermark: 41, bytes: [1, 2, 3])
            try await store.saveIndexSnapshot(scope: "s", watermark: 42, bytes: [4, 5])
            let snapshot = try #require(try await store.indexSnapshot(scope: "s"))
            #expect(snapshot.watermark == 42 && snapshot.bytes == [4, 5])
            try await store.deleteIndexSnapshots()
            #expect(try await store.indexSnapshot(scope: "s") == nil)
            #expect(try await store.metadata("embedding_model") == nil)
            try await store.setMetadata("embedding_model", "m@1")
            try await store.setMetadata("embedding_model", "m@2")
            #expect(try await store.metadata("embedding_model") == "m@2")
            try await store.configureScope("s", ScopeOverrides(similarityThreshold: 0.95, maxError: 0.1), entryLifetime: nil)
            try await store.configureScope("s", ScopeOverrides(similarityThreshold: 0.9, ttlSeconds: 60, maxError: 0.02), entryLifetime: nil)
            try await store.configureScope("t", ScopeOverrides(maxError: 0.05), entryLifetime: nil)
            #expect(try await store.scopeSettings()["s"]?.similarityThreshold == 0.9)
            #expect(try await store.scopeSettings()["s"]?.ttlSeconds == 60)
            #expect(try await store.scopeSettings()["t"] == nil, "a bound alone is no threshold or TTL")
            #expect(try await store.scopeMaxErrors() == ["s": 0.02, "t": 0.05])
            try await store.configureScope("s", ScopeOverrides(), entryLifetime: nil)
            #expect(try await store.scopeSettings().isEmpty)
            #expect(try await store.scopeMaxErrors() == ["t": 0.05])
        },
    ]

    static let lifetimes: [StoreCase] = [
        StoreCase("old exchanges are purged by age and scope, with the oldest id of each") { store in
            var ids: [Int64] = []
            for n in 1...6 { ids.append(try await store.appendTeacherExchange(exchange(n, scope: n <= 4 ? "s" : "t"))) }
            let purged = try await store.purgeTeacherLog(scope: "s", createdBefore: t0 + 3.5)
            #expect(purged.count == 1 && purged["s"]?.count == 3 && purged["s"]?.oldestID == ids[0])
            let all = try await store.purgeTeacherLog(scope: nil, createdBefore: t0 + 100)
            #expect(all["s"]?.count == 1 && all["t"]?.count == 2 && all["t"]?.oldestID == ids[4])
            #expect(try await store.teacherLogCount() == 0)
        },
        StoreCase("a scope's entries take a new lifetime from their creation") { store in
            _ = try await store.appendTeacherExchange(exchange(1), cacheEntry: entry("a", created: 10, expires: 20))
            _ = try await store.appendTeacherExchange(exchange(2), cacheEntry: entry("b", scope: "t", created: 10, expires: 20))
            try await store.configureScope("s", ScopeOverrides(ttlSeconds: 100), entryLifetime: 100)
            var expiries = Dictionary(uniqueKeysWithValues: try await store.cacheEntryKeys().map { ($0.exactKey, $0.expiresAt) })
            #expect(expiries["a"] == t0 + 110 && expiries["b"] == t0 + 20)
            try await store.configureScope("s", ScopeOverrides(ttlSeconds: 0), entryLifetime: nil)
            expiries = Dictionary(uniqueKeysWithValues: try await store.cacheEntryKeys().map { ($0.exactKey, $0.expiresAt) })
            #expect(expiries["a"] == .some(nil))
        },
        StoreCase("an entry without a vector is listed among none") { store in
            var long = entry("too long to embed")
            long.embedding = Data()
            let commit = try await store.appendTeacherExchange(exchange(1), cacheEntry: long)
            let id = try #require(commit.entryID)
            #expect(try await store.cacheEntryKeys().map(\.id) == [id])
            #expect(try await store.indexedCacheEntryIDs(scope: "s").isEmpty)
            #expect(try await store.cacheVectors(scope: "s").isEmpty)
            #expect(try await store.cacheVectors(ids: [id]).isEmpty)
            #expect(try await store.cacheEntry(id: id)?.vector == nil)
        },
    ]

    static let students: [StoreCase] = [
        StoreCase("activating a version retires the active one") { store in
            let v1 = try await store.addStudentVersion(version("s"))
            let v2 = try await store.addStudentVersion(version("s"))
            let other = try await store.addStudentVersion(version("t"))
            try await store.activateStudentVersion(id: v1)
            try await store.activateStudentVersion(id: other)
            try await store.activateStudentVersion(id: v2)
            #expect(Set(try await store.currentStudentVersions().compactMap(\.id)) == [v2, other])
            #expect(try await store.studentVersion(id: v1)?.status == .retired)
            #expect(try await store.studentVersion(id: v2)?.model == Data([1, 2, 3]))
            #expect(try await store.studentVersions(scope: "s").map(\.id) == [v2, v1])
            await #expect(throws: StoreError.self) { try await store.activateStudentVersion(id: 999) }
        },
        StoreCase("an active version is added and its predecessor retired at once") { store in
            let v1 = try await store.addStudentVersion(version("s", .active, through: 10, model: Data([7])))
            let rejected = try await store.addStudentVersion(version("s", .rejected, through: 30, model: Data([7])))
            let v2 = try await store.addStudentVersion(version("s", .active, through: 20, model: Data([7])))
            _ = try await store.addStudentVersion(version("t", .active, through: 5, model: Data([7])))
            #expect(try await store.studentVersion(id: v1)?.status == .retired)
            #expect(try await store.studentVersion(id: rejected)?.status == .rejected)
            #expect(try await store.currentStudentVersions().filter { $0.scope == "s" }.map(\.id) == [v2])
            let listed = try await store.studentVersions(scope: "s")
            #expect(listed.map(\.id) == [v2, rejected, v1] && listed.allSatisfy { $0.model.isEmpty && $0.trainedThrough > 0 })
        },
        StoreCase("a suspended version is its scope's current one until another is active") { store in
            let v1 = try await store.addStudentVersion(version("s", .active))
            try await store.setStudentVersionStatus(id: v1, .suspended)
            #expect(try await store.currentStudentVersions().map(\.id) == [v1])
            let v2 = try await store.addStudentVersion(version("s", .active))
            #expect(try await store.currentStudentVersions().map(\.id) == [v2])
        },
    ]
}
#endif
