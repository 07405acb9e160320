import DistillAPI
import DistillClient
import Foundation
import Testing

/// The semantic cache through real processes: distilld, teacher-sim and cachectl.
@Suite(.timeLimit(.minutes(2)))
struct CacheEndToEndTests {
    /// The first Banking77 query of the data file, and paraphrases of it above and far below the threshold.
    static let question = "I am still waiting on my card?"
    static let paraphrase = "Still waiting on my card?"
    static let unrelated = "How do I top up my account?"

    /// Who answered `text`, asked with an API key (the tenant).
    static func source(
        _ world: EndToEnd.World, _ text: String, key: String = "key-a", parameters: [String: JSONValue] = [:],
        headers: [String: String] = [:]
    ) async throws -> DistillSource? {
        try await world.client(key: key).complete(EndToEnd.request(text, parameters: parameters), headers: headers).info.source
    }

    static func answered(_ world: EndToEnd.World) async throws -> Int {
        try await world.simulatorStats()["answered"]?.intValue ?? -1
    }

    /// A bound loose enough that the verifier's prior alone serves a close paraphrase from the first
    /// lookup: this test is about the processes; DistillCoreTests test what the verifier decides.
    static let looseBound = ["DISTILL_CACHE_MAX_ERROR": "0.4"]

    @Test func servesRepeatsAndParaphrasesPerTenantHonoursBypassesAndSurvivesARestart() async throws {
        var world = try await EndToEnd.World.start(environment: Self.looseBound)
        do {
            let client = world.client(key: "key-a")
            let first = try await client.complete(EndToEnd.request(Self.question))
            #expect(first.info.source == .teacher)

            let repeated = try await client.complete(EndToEnd.request(Self.question))
            #expect(repeated.info.source == .cache)
            #expect(repeated.info.similarity == 1)
            #expect(repeated.answer == first.answer)
            let paraphrased = try await client.complete(EndToEnd.request(Self.paraphrase))
            #expect(paraphrased.info.source == .cache)
            #expect(paraphrased.info.similarity ?? 0 >= 0.925)
            #expect(try await Self.answered(world) == 1, "no teacher call for the repeat and the paraphrase")

            #expect(try await Self.source(world, Self.unrelated) == .teacher)
            #expect(try await Self.source(world, Self.question, key: "key-b") == .teacher, "another key is another tenant")

            // A streamed hit is a well-formed event stream.
            let streamed = try await client.stream(EndToEnd.request(Self.question))
            #expect(streamed.info.source == .cache)
            #expect(try await streamed.collect().answer == first.answer)

            // Each bypass rule sends the request to the teacher.
            let before = try await Self.answered(world)
            #expect(try await Self.source(world, Self.question, parameters: ["temperature": 1.5]) == .teacher)
            #expect(try await Self.source(world, Self.question, parameters: ["n": 2]) == .teacher)
            #expect(try await Self.source(world, Self.question, headers: ["cache-control": "no-cache"]) == .teacher)
            #expect(try await Self.source(world, Self.question, headers: [DistillHeader.cache: "refresh"]) == .teacher)
            let unseen = EndToEnd.samples[5].query
            #expect(try await Self.source(world, unseen, headers: ["cache-control": "no-store"]) == .teacher)
            #expect(try await Self.source(world, unseen) == .teacher, "no-store wrote nothing")
            #expect(try await Self.answered(world) == before + 6)

            // cachectl sees the entries and the counters.
            let statsOutput = try await world.cachectl(["cache", "stats", "--json"])
            let stats = try JSONDecoder.admin.decode(CacheStats.self, from: Data(statsOutput.stdout.utf8))
            #expect(stats.entries == 4 && stats.indexed == 4)
            #expect(stats.scopes.count == 2, "one scope per key")
            #expect(stats.lookups["exact_hit"] == 2 && stats.lookups["semantic_hit"] == 1)
            #expect(stats.bypasses == ["temperature": 1, "n": 1, "no-cache": 1, "refresh": 1, "no-store": 1])
            let search = try await world.cachectl(["cache", "search", Self.paraphrase, "--json"])
            let results = try JSONDecoder.admin.decode([CacheSearchResult].self, from: Data(search.stdout.utf8))
            #expect(results.first?.entry.prompt == Self.question && (results.first?.similarity ?? 0) > 0.925)

            // Export, purge everything, import: the entries answer again without the teacher.
            let exportPath = world.directory.appendingPathComponent("cache.jsonl").path
            #expect(try await world.cachectl(["cache", "export", "--file", exportPath]).status == 0)
            #expect(try await world.cachectl(["cache", "purge", "--all"]).stdout.contains("purged 4 entries"))
            #expect(try await Self.source(world, Self.unrelated) == .teacher)
            #expect(try await world.cachectl(["cache", "import", exportPath]).stdout.contains("imported 4 entries"))

            // Stop, start again: the entries and their index are still there.
            world.daemon.signal(SIGTERM)
            #expect(await world.daemon.exitStatus() == 0)
            try await world.startDaemon(environment: Self.looseBound)
            let answeredBefore = try await Self.answered(world)
            #expect(try await Self.source(world, Self.question) == .cache)
            #expect(try await Self.source(world, Self.paraphrase) == .cache)
            #expect(try await Self.source(world, Self.unrelated) == .cache)
            #expect(try await Self.answered(world) == answeredBefore)
        } catch {
            Issue.record("distilld stderr:\n\(world.daemon.stderr)")
            await world.stop()
            throw error
        }
        await world.stop()
    }

    @Test func theLeastRecentlyUsedEntriesGoAtTheCap() async throws {
        let world = try await EndToEnd.World.start(environment: ["DISTILL_CACHE_MAX_ENTRIES": "2", "DISTILL_CACHE_TTL_SECONDS": "0"])
        do {
            let (a, b, c) = (EndToEnd.samples[10].query, EndToEnd.samples[20].query, EndToEnd.samples[30].query)
            _ = try await Self.source(world, a)
            _ = try await Self.source(world, b)
            #expect(try await Self.source(world, a) == .cache)
            _ = try await Self.source(world, c)  // over the cap: b, the least recently used, goes
            #expect(try await Self.source(world, a) == .cache)
            #expect(try await Self.source(world, b) == .teacher, "evicted")
            #expect(try await Self.source(world, a) == .cache, "c went this time, not a")
        } catch {
            Issue.record("distilld stderr:\n\(world.daemon.stderr)")
            await world.stop()
            throw error
        }
        await world.stop()
    }

    @Test func entriesExpireAfterTheirTTL() async throws {
        let world = try await EndToEnd.World.start()
        do {
            let query = EndToEnd.samples[10].query
            #expect(try await Self.source(world, query) == .teacher)
            #expect(try await Self.source(world, query) == .cache, "the default TTL is 30 days")
            let scope = try #require(try await world.socketClient.cacheStats().scopes.first?.scope)
            let configured = try await world.cachectl(["cache", "configure", "--scope", scope, "--ttl", "1s"])
            #expect(configured.status == 0, "\(configured.stderr)")
            // The new TTL governs the entry already cached: it expires a second after it was created,
            // by the daemon's wall clock. Ask until it does, within a deadline.
            var source: DistillSource? = .cache
            let deadline = ContinuousClock.now + .seconds(30)
            while source == .cache, ContinuousClock.now < deadline { source = try await Self.source(world, query) }
            #expect(source == .teacher, "expired")
        } catch {
            Issue.record("distilld stderr:\n\(world.daemon.stderr)")
            await world.stop()
            throw error
        }
        await world.stop()
    }
}
