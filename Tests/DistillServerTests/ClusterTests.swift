import ChildProcess
import DistillAPI
import DistillCore
import Foundation
import Logging
import TeacherSimulator
import Testing

@testable import DistillServer

/// Two nodes (two systems in this process) on one PostgreSQL store: what one commits, the other
/// follows through the change feed.
@Suite(.enabled(if: ScratchPostgres.binDirectory != nil, Comment(rawValue: ScratchPostgres.missingMessage)))
struct ClusterTests {
    static let dataset = TeacherDataset(entries: [
        .init(text: "where is my card", gold: nil, answer: "card_arrival", top: [("card_arrival", 1)]),
        .init(text: "my card was stolen", gold: nil, answer: "lost_or_stolen_card", top: [("lost_or_stolen_card", 1)]),
    ])

    func node(store url: String, teacher: String) async throws -> DistillSystem {
        var config = DistillConfig()
        config.store.dataDir = FileManager.default.temporaryDirectory.appendingPathComponent("distill-node-\(UUID().uuidString)").path
        config.store.url = url
        config.store.tls = "disable"
        config.teacher.baseURL = teacher
        config.teacher.maxAttempts = 1
        config.student.enabled = false
        // A bound the verified cache's prior alone satisfies for a close paraphrase: the test is of the feed.
        config.cache.maxError = 0.4
        return try await DistillSystem.open(
            config: config, environment: ["PGPASSWORD": ScratchPostgres.password], embedder: RoutesTests.embedder,
            logger: RoutesTests.quiet)
    }

    func ask(_ node: DistillSystem, _ text: String) async throws -> CompletionResponse {
        let body = #"{"model":"m","messages":[{"role":"user","content":"\#(text)"}]}"#
        return try await node.completions.complete(
            try ChatRequest.parse(Data(body.utf8)), info: RequestInfo(requestID: UUID().uuidString, tenant: ""))
    }

    @Test func whatOneNodeCommitsTheOtherFollows() async throws {
        let url = try await ScratchPostgres.shared().createDatabase()
        let simulator = TeacherSimulator(dataset: Self.dataset, options: SimulatorOptions())
        try await simulator.serve { teacher in
            let a = try await node(store: url, teacher: teacher)
            let b = try await node(store: url, teacher: teacher)
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

            await a.shutdown(logger: RoutesTests.quiet)
            await b.shutdown(logger: RoutesTests.quiet)
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
        let url = try postgres.createDatabase()
        let simulator = TeacherSimulator(dataset: Self.dataset, options: SimulatorOptions())
        try await simulator.serve { teacher in
            let a = try await node(store: url, teacher: teacher)
            let b = try await node(store: url, teacher: teacher)
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
            await a.shutdown(logger: RoutesTests.quiet)
            await b.shutdown(logger: RoutesTests.quiet)
        }
        await postgres.stop()
    }
}
