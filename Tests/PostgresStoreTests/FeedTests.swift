import ChildProcess
import Foundation
import Logging
import PostgresNIO
import PostgresStore
import Storage
import Testing

@Suite(.enabled(if: serverAvailable, Comment(rawValue: ScratchPostgres.missingMessage)))
struct FeedTests {
    func entry(_ key: String, scope: String = "s") -> CacheEntryRecord {
        CacheEntryRecord(
            scope: scope, exactKey: key, prompt: key, messages: "[]", answer: "answer to \(key)", finishReason: "stop",
            vector: [1, 0], createdAt: Date(timeIntervalSince1970: 1_800_000_000), expiresAt: nil)
    }

    func exchange(_ scope: String = "s") -> TeacherLogRecord {
        TeacherLogRecord(
            createdAt: Date(timeIntervalSince1970: 1_800_000_000), requestID: "r", scope: scope, model: "m", messages: "[]",
            parameters: "{}", prompt: "q", answer: "a", topLogprobs: nil, promptTokens: nil, completionTokens: nil,
            latencyMilliseconds: 1, streamed: false)
    }

    @Test func everyChangeIsInTheFeedInCommitOrderWithItsNode() async throws {
        let configuration = try await Server.configuration()
        let a = try await Server.open(configuration)
        let b = try await Server.open(configuration)
        #expect(a.nodeID != b.nodeID)
        let start = try await b.latestChangeID()

        let first = try await a.appendTeacherExchange(exchange(), cacheEntry: entry("k"))
        let second = try await a.appendTeacherExchange(exchange(), cacheEntry: entry("k"))
        try await a.configureScope("s", ScopeOverrides(similarityThreshold: 0.9), entryLifetime: nil)
        let version = try await a.addStudentVersion(
            StudentVersionRecord(scope: "s", createdAt: Date(), status: .active, model: Data(), metrics: "{}", trainedThrough: 1, trainingSeconds: 0))
        let purged = try await b.purgeCacheEntries(scope: nil, createdBefore: nil)

        let feed = try await b.changes(after: start, limit: 100)
        let key = CacheEntryKey(id: first.entryID!, scope: "s", exactKey: "k", expiresAt: nil)
        #expect(feed.map(\.change) == [
            .teacherLogAppended(scope: "s"), .cacheEntryAdded(id: first.entryID!, scope: "s"),
            .teacherLogAppended(scope: "s"), .cacheEntryRemoved(key), .cacheEntryAdded(id: second.entryID!, scope: "s"),
            .scopeSettingsChanged(scope: "s"), .studentVersionsChanged(scope: "s"),
            .cacheEntryRemoved(CacheEntryKey(id: second.entryID!, scope: "s", exactKey: "k", expiresAt: nil)),
        ])
        #expect(feed.map(\.node) == Array(repeating: a.nodeID, count: 7) + [b.nodeID])
        #expect(feed.map(\.id) == feed.map(\.id).sorted())
        #expect(purged.map(\.id) == [second.entryID!] && version > 0)
        // Paging by id picks up where the last page ended.
        let page = try await b.changes(after: feed[2].id, limit: 2)
        #expect(page.map(\.id) == [feed[3].id, feed[4].id])
        try a.close()
        try b.close()
    }

    @Test func theFeedIsPrunedOfWhatEveryFollowingNodeHasAppliedAndAFollowerBehindThePruningIsTold() async throws {
        let configuration = try await Server.configuration()
        let a = try await Server.open(configuration)
        let b = try await Server.open(configuration)
        for threshold in [0.8, 0.85, 0.9] { try await a.configureScope("s", ScopeOverrides(similarityThreshold: threshold), entryLifetime: nil) }
        let ids = try await a.changes(after: 0, limit: 10).map(\.id)
        try await a.recordPosition(ids[2])
        try await b.recordPosition(ids[0])
        let later = Date().addingTimeInterval(60)

        #expect(try await a.pruneChanges(createdBefore: Date().addingTimeInterval(-3600)) == 0, "kept for the retention")
        #expect(try await a.pruneChanges(createdBefore: later) == 1, "B, connected, has applied only the first")
        #expect(try await a.changes(after: ids[0], limit: 10).map(\.id) == [ids[1], ids[2]])

        // B gone (and not heard from since the cutoff) no longer holds the feed back.
        try b.close()
        try await withDeadline(.seconds(30), what: "B's connections to end") {
            var pruned = 0
            while pruned < 2 { pruned += try await a.pruneChanges(createdBefore: later) }
        }
        #expect(try await a.changes(after: ids[2], limit: 10).isEmpty)
        #expect(try await a.latestChangeID() == ids[2], "the newest id outlives its row")

        // A node that stood before the pruned changes cannot catch up change by change: it is told.
        await #expect(throws: FeedGap.self) { _ = try await a.changes(after: ids[0], limit: 10) }
        try a.close()
    }

    /// Whether `stream` yields within 30 s.
    func yields(_ stream: AsyncStream<Void>, _ what: String) async throws -> Bool {
        try await withDeadline(.seconds(30), what: what) { await stream.first { _ in true } != nil }
    }

    @Test func anotherNodesCommitWakesTheFollowers() async throws {
        let configuration = try await Server.configuration()
        let a = try await Server.open(configuration)
        let b = try await Server.open(configuration)
        let wakeups = b.feedWakeups()
        let teacherLog = b.teacherLogCommits()
        // The first wake-up says b listens (and should catch up on what it missed meanwhile).
        #expect(try await yields(wakeups, "the listener"))
        #expect(try await yields(teacherLog, "the listener"))
        try await a.appendTeacherExchange(exchange())
        #expect(try await yields(wakeups, "a notification"))
        #expect(try await yields(teacherLog, "word of the teacher log"))
        try a.close()
        try b.close()
    }

    @Test func twoNodesStoringTheSameKeyAtOnceKeepOneEntry() async throws {
        let configuration = try await Server.configuration()
        let a = try await Server.open(configuration)
        let b = try await Server.open(configuration)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for n in 0..<20 {
                let store = n.isMultiple(of: 2) ? a : b
                group.addTask { _ = try await store.appendTeacherExchange(exchange(), cacheEntry: entry("same")) }
            }
            try await group.waitForAll()
        }
        #expect(try await a.cacheEntryCount() == 1)
        #expect(try await a.teacherLogCount() == 20)
        try a.close()
        try b.close()
    }
}

@Suite(.enabled(if: serverAvailable, Comment(rawValue: ScratchPostgres.missingMessage)))
struct LeaderTests {
    @Test func oneNodeLeadsAndAnotherTakesOverWhenItsSessionEnds() async throws {
        let configuration = try await Server.configuration()
        let a = try await Server.open(configuration)
        let b = try await Server.open(configuration)
        // Dropping a leadership stream leaves the election: a keeps its stream to the end.
        let aLeadership = a.leadership()
        let aLeads = try await withDeadline(.seconds(30), what: "a to lead") { await aLeadership.first { $0 } }
        #expect(aLeads == true)
        #expect(try await a.leadershipState().leader == a.nodeID)

        let bLeadership = b.leadership()
        let takeover = Task { await bLeadership.first { $0 } }
        // b waits in pg_advisory_lock: PostgreSQL's lock table shows it waiting, not leading.
        try await withDeadline(.seconds(30), what: "b to wait for the lock") {
            while try await a.leadershipState().waiting != [b.nodeID] { await Task.yield() }
        }
        #expect(try await a.leadershipState().leader == a.nodeID)

        // The leader's session ends (as when its process dies): b leads at once.
        withExtendedLifetime(aLeadership) {}
        try a.close()
        let bLeads = try await withDeadline(.seconds(30), what: "b to take over") { await takeover.value }
        #expect(bLeads == true)
        let state = try await b.leadershipState()
        #expect(state.leader == b.nodeID && state.waiting.isEmpty)
        try b.close()
    }
}

@Suite(.enabled(if: serverAvailable, Comment(rawValue: ScratchPostgres.missingMessage)))
struct SchemaTests {
    @Test func openingAgainMigratesNothingTwice() async throws {
        let configuration = try await Server.configuration()
        let first = try await Server.open(configuration)
        try await first.appendTeacherExchange(FeedTests().exchange())
        try first.close()
        let second = try await Server.open(configuration)
        #expect(try await second.teacherLogCount() == 1)
        try await second.checkHealth()
        try second.close()
    }

    @Test func aSchemaFromANewerVersionIsRefusedNotGuessedAt() async throws {
        let configuration = try await Server.configuration()
        let store = try await Server.open(configuration)
        try await store.setMetadata("probe", "1")
        try store.close()
        // What a later version's migration leaves behind, written beside the store.
        let client = PostgresClient(
            configuration: .init(host: "127.0.0.1", port: try await ScratchPostgres.shared().port, username: ScratchPostgres.user,
                                 password: ScratchPostgres.password, database: configuration.database, tls: .disable),
            backgroundLogger: Logger(label: "test"))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            try await client.query("INSERT INTO schema_migrations (version, name) VALUES (99, 'from the future')")
            group.cancelAll()
        }
        await #expect {
            _ = try await Server.open(configuration)
        } throws: { error in
            "\(error)".contains("newer distilld")
        }
    }

    @Test func theURLNamesTheStoreAndNeverHoldsThePassword() throws {
        let configuration = try PostgresStoreConfiguration(url: "postgres://distill@db.example:6543/cache", password: "p", tls: .require)
        #expect(configuration.location == "postgres://distill@db.example:6543/cache")
        let socket = try PostgresStoreConfiguration(url: "postgresql://distill@/cache?host=/run/postgresql", password: nil, tls: .disable)
        #expect(socket.socketDirectory == "/run/postgresql" && socket.database == "cache")
        #expect {
            _ = try PostgresStoreConfiguration(url: "postgres://distill:hunter2@db/cache", password: nil, tls: .prefer)
        } throws: { error in
            "\(error)".contains("password") && !"\(error)".contains("hunter2")
        }
        #expect(throws: StoreError.self) { _ = try PostgresStoreConfiguration(url: "mysql://x@db/cache", password: nil, tls: .prefer) }
    }

    @Test func aWrongPasswordSaysSo() async throws {
        var configuration = try await Server.configuration()
        configuration.password = "wrong"
        await #expect {
            _ = try await Server.open(configuration)
        } throws: { error in
            "\(error)".contains("password")
        }
    }
}
