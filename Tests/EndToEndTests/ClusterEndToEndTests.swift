import ChildProcess
import DistillAPI
import DistillClient
import Foundation
import Testing

/// Two distilld processes on one PostgreSQL store (a scratch server the test starts), each with
/// its own teacher-sim: what one caches, the other serves, woken by NOTIFY.
@Suite(.enabled(if: ScratchPostgres.binDirectory != nil, Comment(rawValue: ScratchPostgres.missingMessage)), .timeLimit(.minutes(3)))
struct ClusterEndToEndTests {
    @Test func anAnswerCachedThroughOneNodeIsAnExactAndASemanticHitOnTheOther() async throws {
        let url = try await ScratchPostgres.shared().createDatabase()
        // A loose error bound, which the verified cache's prior meets for a close paraphrase: the test is of the feed.
        let environment = [
            "DISTILL_STORE_URL": url, "DISTILL_STORE_TLS": "disable", "PGPASSWORD": ScratchPostgres.password,
            "DISTILL_CACHE_MAX_ERROR": "0.4",
        ]
        let a = try await EndToEnd.World.start(environment: environment)
        let b = try await EndToEnd.World.start(environment: environment)
        do {
            let question = "I am still waiting on my card?"
            #expect(try await a.client(key: "k").complete(EndToEnd.request(question)).info.source == .teacher)
            // B hears of it through the feed: its admin API shows the entry once it has.
            try await withDeadline(.seconds(20), what: "node B to follow node A's commit") {
                while try await b.socketClient.cacheStats().entries == 0 { await Task.yield() }
            }
            let exact = try await b.client(key: "k").complete(EndToEnd.request(question))
            #expect(exact.info.source == .cache && exact.info.similarity == 1)
            let paraphrase = try await b.client(key: "k").complete(EndToEnd.request("Still waiting on my card?"))
            #expect(paraphrase.info.source == .cache)
            #expect(try await b.simulatorStats()["answered"]?.intValue == 0, "node B never asked its teacher")

            let status = try await b.socketClient.status()
            #expect(status.cluster?.count == 2 && status.cluster?.filter(\.connected).count == 2)
            #expect(status.cluster?.filter(\.leader).count == 1, "one node leads")
            let printed = try await b.cachectl(["status"])
            #expect(printed.stdout.contains("(this node") && printed.stdout.contains("leader"))
        } catch {
            await a.stop()
            await b.stop()
            throw error
        }
        await a.stop()
        await b.stop()
    }
}
