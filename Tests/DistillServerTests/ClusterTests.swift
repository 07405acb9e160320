import ChildProcess
import DistillAPI
import DistillCore
import Foundation
import Logging
import SeededRandom
import Student
import TeacherSimulator
import Testing

@testable import DistillCore
@testable import DistillServer

/// Two nodes (two systems in this process) on one PostgreSQL store: what one commits, the other
/// follows through the change feed.
@Suite(.enabled(if: ScratchPostgres.binDirectory != nil, Comment(rawValue: ScratchPostgres.missingMessage)))
struct ClusterTests {
    static let dataset = TeacherDataset(entries: [
        .init(text: "where is my card", gold: nil, answer: "card_arrival", top: [("card_arrival", 1)]),
        .init(text: "my card was stolen", gold: nil, answer: "lost_or_stolen_card", top: [("lost_or_stolen_card", 1)]),
    ])

    func node(store url: String, teacher: String, auditEverything: Bool = false) async throws -> DistillSystem {
        var config = DistillConfig()
        config.store.dataDir = FileManager.default.temporaryDirectory.appendingPathComponent("distill-node-\(UUID().uuidString)").path
        config.store.url = url
        config.store.tls = "disable"
        config.teacher.baseURL = teacher
        config.teacher.maxAttempts = 1
        config.student.enabled = auditEverything
        config.student.auditShare = 1
        config.distill.enabled = false
        // A bound the verified cache's prior alone satisfies for a close paraphrase: the test is of the feed.
        config.cache.maxError = 0.4
        return try await DistillSystem.open(
            config: config, environment: ["PGPASSWORD": ScratchPostgres.password], embedder: RoutesTests.embedder,
            logger: RoutesTests.quiet)
    }

    /// Two nodes on `url` (a fresh database when nil) beside a teacher, both shut down however `body`
    /// ends: a failed `#require` used to skip the shutdowns, and the process then crashed on their
    /// open clients, hiding the failure.
    func withTwoNodes(
        store url: String? = nil, auditEverything: Bool = false,
        _ body: (_ a: DistillSystem, _ b: DistillSystem, _ teacher: String, _ simulator: TeacherSimulator) async throws -> Void
    ) async throws {
        let store: String
        if let url { store = url } else { store = try await ScratchPostgres.shared().createDatabase() }
        let simulator = TeacherSimulator(dataset: Self.dataset, options: SimulatorOptions())
        try await simulator.serve { teacher in
            let a = try await node(store: store, teacher: teacher, auditEverything: auditEverything)
            let b: DistillSystem
            do {
                b = try await node(store: store, teacher: teacher, auditEverything: auditEverything)
            } catch {
                await a.shutdown(logger: RoutesTests.quiet)
                throw error
            }
            do {
                try await body(a, b, teacher, simulator)
            } catch {
                await a.shutdown(logger: RoutesTests.quiet)
                await b.shutdown(logger: RoutesTests.quiet)
                throw error
            }
            await a.shutdown(logger: RoutesTests.quiet)
            await b.shutdown(logger: RoutesTests.quiet)
        }
    }

    func ask(_ node: DistillSystem, _ text: String) async throws -> CompletionResponse {
        let body = #"{"model":"m","messages":[{"role":"user","content":"\#(text)"}]}"#
        return try await node.completions.complete(
            try ChatRequest.parse(Data(body.utf8)), info: RequestInfo(requestID: UUID().uuidString, tenant: ""))
    }

    @Test func whatOneNodeCommitsTheOtherFollows() async throws {
        try await withTwoNodes { a, b, _, simulator in
            #expect(try await ask(a, "where is my card").source == .teacher)
            // A's commit returned before its answer did: B reads it from the feed.
            try await b.follower?.catchUp()
            let exact = try await ask(b, "Where is  my card")
            #expect(exact.source == .cache && exact.similarity == 1)
            let semantic = try await ask(b, "where is my card?")
            #expect(semantic.source == .cache)
            #expect(simulator.stats.requests == 1)

            // A scope setting changed through B reaches A.
            let scope = try #require(b.cache?.scopes().first?.scope)
            try await b.cache?.configure(scope: scope, similarityThreshold: 0.99, ttlSeconds: nil, maxError: 0.3)
            try await a.follower?.catchUp()
            #expect(a.cache?.settings(for: scope).similarityThreshold == 0.99)
            #expect(a.cache?.settings(for: scope).maxError == 0.3)

            // A purge through A leaves B's memory too: B asks the teacher again.
            #expect(try await a.cache?.purge(scope: nil, createdBefore: nil) == 1)
            try await b.follower?.catchUp()
            #expect(b.cache?.count == 0 && b.cache?.memory.indexed == 0)
            #expect(try await ask(b, "where is my card").source == .teacher)
            #expect(simulator.stats.requests == 2)
            try await a.follower?.catchUp()
            #expect(a.cache?.count == 1)

            // Either node shows both, caught up; cachectl status prints it.
            let cluster = try #require(await a.status(listeners: []).cluster)
            #expect(Set(cluster.map(\.node)) == [a.follower!.nodeID, b.follower!.nodeID])
            #expect(cluster.allSatisfy { $0.connected && $0.lag == 0 || $0.node == b.follower!.nodeID })
            #expect(cluster.filter(\.this).map(\.node) == [a.follower!.nodeID])

        }
    }

    @Test func aNodeThatStartsLaterLoadsWhatTheOthersCommitted() async throws {
        let url = try await ScratchPostgres.shared().createDatabase()
        let simulator = TeacherSimulator(dataset: Self.dataset, options: SimulatorOptions())
        try await simulator.serve { teacher in
            let a = try await node(store: url, teacher: teacher)
            _ = try await ask(a, "my card was stolen")
            let b = try await node(store: url, teacher: teacher)
            #expect(try await ask(b, "my card was stolen").source == .cache)
            #expect(simulator.stats.requests == 1)
            await a.shutdown(logger: RoutesTests.quiet)
            await b.shutdown(logger: RoutesTests.quiet)
        }
    }

    @Test func whilePostgreSQLIsDownHitsFromMemoryServeAndWritesFailUntilItIsBack() async throws {
        // A server of its own: this test stops it.
        let postgres = try await ScratchPostgres.start()
        try await withTwoNodes(store: try postgres.createDatabase()) { a, b, _, _ in
            _ = try await ask(a, "where is my card")
            #expect(try await ask(a, "where is my card").source == .cache, "held in memory from now on")

            await postgres.stop()
            #expect(try await ask(a, "where is my card").source == .cache)
            await #expect {
                _ = try await ask(a, "my card was stolen")
            } throws: { error in
                // The teacher answered, but the answer could not be committed: a 503 storage_unavailable.
                guard case DistillError.answerNotRecorded = error else { return false }
                return true
            }
            #expect(await !a.unreadiness().isEmpty)

            try await postgres.restart()
            // The nodes reconnect by themselves.
            #expect(try await ask(a, "my card was stolen").source == .teacher)
            try await b.follower?.catchUp()
            #expect(try await ask(b, "my card was stolen").source == .cache)
            #expect(await a.unreadiness().isEmpty)
        }
        await postgres.stop()
    }

    @Test func theAuditsOfEveryNodeCountInOneTestOfTheVersion() async throws {
        try await withTwoNodes(auditEverything: true) { a, b, _, _ in
            let scope = "audited"
            let version = try await StoredStudent.add(
                to: a.store, scope: scope, embeddingModel: RoutesTests.embedder.identity.key, status: .active)
            let nodes = [try #require(a.students), try #require(b.students)]
            // A follows the feed past its own changes: it serves the version it stored as a promotion would have it.
            try await nodes[0].follow(scope: scope)
            try await b.follower?.catchUp()
            // The centre of the class "a" (StoredStudent): confident, and audited every time.
            let vector: [Float] = (0..<8).map { $0 == 0 ? 1 : 0 }

            // Seeded outcomes, 70% agreeing, dealt to the nodes in turn; the same test run over all of them, and over
            // each node's alone.
            var generator = SplitMix64(seed: 7)
            var together = SequentialTest(.audits)
            var alone = [SequentialTest(.audits), SequentialTest(.audits)]
            var audits = 0
            while !together.alarmed {
                let turn = audits % 2
                let decision = try #require(nodes[turn].decide(scope: scope, vector: vector), "suspended before the test alarmed")
                try #require(decision.action == .audit && decision.auditWeight == 1)
                let agrees = Double.random(in: 0..<1, using: &generator) < 0.7
                await nodes[turn].recordTeacherAnswer(decision, vector: nil, teacherAnswer: agrees ? "a" : "b")
                together.record(agrees)
                alone[turn].record(agrees)
                audits += 1
                try #require(audits < 1_000, "never alarmed")
            }
            #expect(!alone[0].alarmed && !alone[1].alarmed, "either node's own audits would not have suspended it")

            // The node whose audit alarmed suspended it in the store; the other follows.
            let last = nodes[(audits - 1) % 2]
            #expect(last.decide(scope: scope, vector: vector) == nil)
            #expect(last.status().scopes.first?.auditTest?.observations == audits, "every audit counted once")
            #expect(try await a.store.studentVersion(id: version)?.status == .suspended)
            try await a.follower?.catchUp()
            try await b.follower?.catchUp()
            #expect(nodes.allSatisfy { $0.decide(scope: scope, vector: vector) == nil })

            // Promoted again through B, the version is tested afresh on every node.
            _ = try await nodes[1].promote(version: version)
            try await a.follower?.catchUp()
            let decision = try #require(nodes[0].decide(scope: scope, vector: vector))
            await nodes[0].recordTeacherAnswer(decision, vector: nil, teacherAnswer: "a")
            #expect(nodes[0].status().scopes.first?.auditTest?.observations == 1)
            #expect(nodes[0].decide(scope: scope, vector: vector) != nil)
        }
    }

    @Test func whatTwoNodesLearnOfAScopeAtOnceIsMergedNotOverwritten() async throws {
        let url = try await ScratchPostgres.shared().createDatabase()
        try await withTwoNodes(store: url) { a, b, teacher, _ in
            let (cacheA, cacheB) = (try #require(a.cache), try #require(b.cache))
            _ = try await ask(a, "where is my card")
            let scope = try #require(cacheA.scopes().first?.scope)
            // A bound the prior cannot show: each close paraphrase teaches instead of being served.
            try await cacheA.configure(scope: scope, similarityThreshold: nil, ttlSeconds: nil, maxError: 0.01)
            try await b.follower?.catchUp()

            // Each node learns from paraphrases the other never sees, before either writes what it learned.
            for text in ["where's my card?", "Where is my card now?"] { _ = try await ask(a, text) }
            for text in ["where is my card?", "where is my card please", "Where is my card at the moment?"] { _ = try await ask(b, text) }
            let (learnedA, learnedB) = (cacheA.verification(for: scope), cacheB.verification(for: scope))
            #expect(learnedA.lessons >= 1 && learnedB.lessons >= 1)
            try await cacheA.flushBeliefs()
            try await cacheB.flushBeliefs()

            // B's write merged into A's: it holds both nodes' lookups and lessons, and so does the store.
            let merged = cacheB.verification(for: scope)
            #expect(merged.lessons == learnedA.lessons + learnedB.lessons)
            #expect(merged.wrongLessons == learnedA.wrongLessons + learnedB.wrongLessons)
            #expect(merged.lookups == learnedA.lookups + learnedB.lookups)
            let restarted = try await node(store: url, teacher: teacher)
            #expect(restarted.cache?.verification(for: scope) == merged, "a node that starts loads the merged belief")

            // A takes in B's lessons with its next write.
            _ = try await ask(a, "where is my card, please?")
            let next = cacheA.verification(for: scope)
            try await cacheA.flushBeliefs()
            #expect(cacheA.verification(for: scope).lessons == merged.lessons + next.lessons - learnedA.lessons)
            await restarted.shutdown(logger: RoutesTests.quiet)
        }
    }
}
