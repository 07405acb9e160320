import CacheVerification
import DistillAPI
import Embedding
import Foundation
import Logging
import SQLiteStore
import Storage
import Teacher
import TeacherSimulator
import Testing

@testable import DistillCore

/// The cache on the request path, with the real embedder, a real store and the simulator.
@Suite struct SemanticCacheTests {
    static let quiet = quietLogger
    static let embedder = sharedEmbedder
    static let dataset = TeacherDataset(entries: [
        .init(text: "I am still waiting on my card?", gold: nil, answer: "card_arrival", top: [("card_arrival", 1)]),
        .init(text: "How do I top up my account?", gold: nil, answer: "top_up", top: [("top_up", 1)]),
        .init(text: "What is the exchange rate?", gold: nil, answer: "exchange_rate", top: [("exchange_rate", 1)]),
        .init(text: "Can I get a refund?", gold: nil, answer: "refund", top: [("refund", 1)]),
    ])

    /// A request path over a fresh store (or `directory`'s), with the cache and the simulator.
    struct World {
        let service: CompletionService
        let cache: SemanticCache
        let store: SQLiteStore
        let simulator: TeacherSimulator
        let clock: ManualClock
        let metrics: RecordingMetrics
    }

    func withWorld(
        directory: URL = FileManager.default.temporaryDirectory.appendingPathComponent("distill-cache-\(UUID().uuidString)"),
        configure: (inout CacheSettings, inout IndexSettings) -> Void = { _, _ in }, _ body: (World) async throws -> Void
    ) async throws {
        let simulator = TeacherSimulator(dataset: Self.dataset, options: SimulatorOptions())
        var settings = CacheSettings()
        // A bound loose enough that the verifier's prior alone serves a close paraphrase: these tests
        // are about entries, indexes and the store (VerifiedCachePathTests: what the verifier decides).
        settings.maxError = 0.4
        var index = IndexSettings()
        configure(&settings, &index)
        let store = try SQLiteStore(path: directory.appendingPathComponent("distill.sqlite").path)
        let clock = ManualClock()
        try await simulator.serve { baseURL in
            let metrics = RecordingMetrics()
            let cache = try await SemanticCache.open(
                store: store, settings: settings, index: index, embedder: Self.embedder, clock: clock, metrics: metrics,
                logger: Self.quiet)
            let teacher = TeacherClient(configuration: TeacherConfiguration(baseURL: baseURL, maxAttempts: 1), logger: Self.quiet)
            let service = CompletionService(
                store: store, teacher: teacher, cache: cache, students: nil, embedder: Self.embedder,
                temperatureCeiling: settings.temperatureCeiling, clock: clock, metrics: metrics, logger: Self.quiet)
            try await body(World(service: service, cache: cache, store: store, simulator: simulator, clock: clock, metrics: metrics))
            try await teacher.shutdown()
        }
        try store.close()
    }

    static func request(_ text: String, _ extra: String = "") throws -> ChatRequest {
        try ChatRequest.parse(Data(#"{"model":"m","messages":[{"role":"system","content":"Classify."},{"role":"user","content":"\#(text)"}]\#(extra)}"#.utf8))
    }

    static func answer(_ response: CompletionResponse) throws -> String? {
        try JSONValue.parse(response.body)["choices"]?.arrayValue?.first?["message"]?["content"]?.stringValue
    }

    let alice = RequestInfo(requestID: "r", tenant: "alice")

    @Test func aRepeatedRequestIsServedFromTheCacheWithoutATeacherCall() async throws {
        try await withWorld { world in
            let first = try await world.service.complete(try Self.request("I am still waiting on my card?"), info: alice)
            #expect(first.source == .teacher && first.similarity == nil, "the cache was empty")
            // The same message up to case and spacing is an exact hit.
            let again = try await world.service.complete(try Self.request("  i am still WAITING on my card? "), info: alice)
            #expect(again.source == .cache && again.similarity == 1)
            #expect(try Self.answer(again) == "card_arrival")
            let completion = try JSONDecoder().decode(ChatCompletion.self, from: again.body)
            #expect(completion.object == "chat.completion" && completion.id == "chatcmpl-r" && completion.model == "m")
            #expect(completion.choices.map(\.finishReason) == ["stop"] && completion.choices[0].message.role == "assistant")
            #expect(completion.usage == Usage(promptTokens: 0, completionTokens: 0), "a cached answer costs no tokens")
            #expect(world.simulator.stats.answered == 1)
        }
    }

    /// A held answer serves without a store read: an entry deleted behind the cache's back still
    /// serves from memory, and with no memory for answers it does not (but hits still serve).
    @Test(arguments: [64 << 20, 0]) func hitsAreServedFromMemoryWithinItsBudget(hotAnswerBytes: Int) async throws {
        try await withWorld(configure: { cache, _ in cache.hotAnswerBytes = hotAnswerBytes }) { world in
            let question = try Self.request("I am still waiting on my card?")
            _ = try await world.service.complete(question, info: alice)
            #expect(try await world.service.complete(question, info: alice).source == .cache)
            let id = try #require(try await world.store.cacheEntries(scope: nil, after: 0, limit: 1).first?.id)
            _ = try await world.store.deleteCacheEntries(ids: [id])
            let again = try await world.service.complete(question, info: alice)
            #expect(again.source == (hotAnswerBytes > 0 ? .cache : .teacher))
        }
    }

    @Test func anInvalidatedEntryStopsServingThoughItsAnswerWasHeld() async throws {
        try await withWorld { world in
            let question = try Self.request("I am still waiting on my card?")
            _ = try await world.service.complete(question, info: alice)
            #expect(world.cache.memory.heldAnswers == 0, "held from the first hit on")
            #expect(try await world.service.complete(question, info: alice).source == .cache)
            #expect(world.cache.memory.heldAnswers == 1 && world.cache.memory.heldAnswerBytes > 0)
            let id = try #require(try await world.store.cacheEntries(scope: nil, after: 0, limit: 1).first?.id)
            #expect(try await world.cache.invalidate(ids: [id]) == 1)
            #expect(world.cache.memory == (indexed: 0, heldAnswers: 0, heldAnswerBytes: 0))
            #expect(try await world.service.complete(question, info: alice).source == .teacher)
        }
    }

    @Test func aCloseParaphraseHitsAndAnUnrelatedQueryDoesNot() async throws {
        try await withWorld { world in
            _ = try await world.service.complete(try Self.request("I am still waiting on my card?"), info: alice)
            let paraphrase = try await world.service.complete(try Self.request("Still waiting on my card?"), info: alice)
            #expect(paraphrase.source == .cache)
            #expect((paraphrase.similarity ?? 0) > 0.925 && (paraphrase.similarity ?? 0) < 1)
            #expect(try Self.answer(paraphrase) == "card_arrival")

            let unrelated = try await world.service.complete(try Self.request("How do I top up my account?"), info: alice)
            #expect(unrelated.source == .teacher)
            #expect((unrelated.similarity ?? 1) < 0.5, "the best candidate is reported, however poor")
            #expect(try Self.answer(unrelated) == "top_up")
            #expect(world.simulator.stats.answered == 2)
        }
    }

    /// A candidate's prompt is signed once and its signature held with its answer: the one a fresh
    /// computation gives; a replaced entry's goes with it, and its successor is signed anew.
    @Test func aCandidatesSignatureIsHeldWithItsAnswerAndGoesWithIt() async throws {
        try await withWorld { world in
            _ = try await world.service.complete(try Self.request("I am still waiting on my card?"), info: alice)
            let paraphrase = try Self.request("Still waiting on my card?")
            #expect(try await world.service.complete(paraphrase, info: alice).source == .cache)
            let first = try #require(try await world.store.cacheEntries(scope: nil, after: 0, limit: 1).first)
            let firstID = try #require(first.id)
            #expect(world.cache.heldAnswer(id: firstID)?.signature == TextSignature(first.prompt))

            // The same message spelled otherwise (the same exact key) replaces the entry.
            let refresh = RequestInfo(requestID: "r", tenant: "alice", cacheDirective: "refresh")
            _ = try await world.service.complete(try Self.request("I am still waiting on my CARD?"), info: refresh)
            let second = try #require(try await world.store.cacheEntries(scope: nil, after: 0, limit: 10).first)
            let secondID = try #require(second.id)
            #expect(secondID != firstID && second.prompt == "I am still waiting on my CARD?")
            #expect(TextSignature(second.prompt) != TextSignature(first.prompt), "CARD reads as a name")
            #expect(world.cache.heldAnswer(id: firstID) == nil)
            // Served or not, the lookup weighs the new entry with its own prompt's signature.
            _ = try await world.service.complete(paraphrase, info: alice)
            #expect(world.cache.heldAnswer(id: secondID)?.signature == TextSignature(second.prompt))
        }
    }

    @Test func twoTenantsNeverShareAnEntry() async throws {
        try await withWorld { world in
            _ = try await world.service.complete(try Self.request("Can I get a refund?"), info: alice)
            let bob = try await world.service.complete(try Self.request("Can I get a refund?"), info: RequestInfo(requestID: "b", tenant: "bob"))
            #expect(bob.source == .teacher && bob.similarity == nil, "bob's scope is empty")
            #expect(world.cache.count == 2)
        }
    }

    @Test func variedAnswersBypassTheCache() async throws {
        try await withWorld { world in
            let question = "What is the exchange rate?"
            let hot = try await world.service.complete(try Self.request(question, #","temperature":1.5"#), info: alice)
            #expect(hot.source == .teacher && world.cache.count == 0, "not read, not written")
            let several = try await world.service.complete(try Self.request(question, #","n":2"#), info: alice)
            #expect(several.source == .teacher && world.cache.count == 0)
            #expect(world.metrics.snapshot.bypasses == [.temperature: 1, .n: 1])
        }
    }

    @Test func cacheControlAndRefreshDirectives() async throws {
        try await withWorld { world in
            let question = try Self.request("Can I get a refund?")
            func ask(_ cacheControl: String?, _ directive: String? = nil) async throws -> CompletionResponse {
                try await world.service.complete(question, info: RequestInfo(requestID: "r", tenant: "alice", cacheControl: cacheControl, cacheDirective: directive))
            }
            #expect(try await ask("no-store").source == .teacher)
            #expect(world.cache.count == 0, "no-store: nothing written")
            #expect(try await ask(nil).source == .teacher)
            let firstID = try #require(try await world.store.cacheEntries(scope: nil, after: 0, limit: 1).first?.id)
            #expect(try await ask("no-store").source == .cache, "no-store may still read")
            #expect(try await ask("max-age=0, No-Cache").source == .teacher, "no-cache: not read")
            #expect(try await ask(nil, "refresh").source == .teacher)
            let entries = try await world.store.cacheEntries(scope: nil, after: 0, limit: 10)
            #expect(entries.count == 1 && entries[0].id != firstID, "no-cache and refresh replaced the entry")
            #expect(world.simulator.stats.answered == 4)
        }
    }

    @Test func entriesExpireAfterTheirTTL() async throws {
        try await withWorld(configure: { cache, _ in cache.ttlSeconds = 60 }) { world in
            let question = try Self.request("Can I get a refund?")
            _ = try await world.service.complete(question, info: alice)
            world.clock.advance(by: 59)
            #expect(try await world.service.complete(question, info: alice).source == .cache)
            world.clock.advance(by: 1)
            #expect(try await world.service.complete(question, info: alice).source == .teacher, "expired entries do not serve")
            world.clock.advance(by: 61)
            try await world.cache.removeExpired()
            #expect(world.cache.count == 0)
            #expect(world.metrics.snapshot.removals == [.expired: 1])
        }
    }

    @Test func aNewTTLGovernsTheEntriesAlreadyCached() async throws {
        try await withWorld { world in
            let question = try Self.request("Can I get a refund?")
            _ = try await world.service.complete(question, info: alice)
            world.clock.advance(by: 120)
            #expect(try await world.service.complete(question, info: alice).source == .cache, "held in memory, global TTL")
            let scope = try #require(world.cache.scopes().first?.scope)
            try await world.cache.configure(scope: scope, similarityThreshold: nil, ttlSeconds: 60, maxError: nil)
            #expect(try await world.service.complete(question, info: alice).source == .teacher, "two minutes old: expired under a 60 s TTL")
            world.clock.advance(by: 59)
            #expect(try await world.service.complete(question, info: alice).source == .cache, "the new answer lives 60 s")
            try await world.cache.configure(scope: scope, similarityThreshold: nil, ttlSeconds: nil, maxError: nil)
            world.clock.advance(by: 3600)
            #expect(try await world.service.complete(question, info: alice).source == .cache, "back to the global TTL (30 days)")
            let stored = try await world.store.cacheEntries(scope: scope, after: 0, limit: 10)
            let globalTTL = CacheSettings().ttlSeconds
            #expect(!stored.isEmpty && stored.allSatisfy { $0.expiresAt == $0.createdAt.addingTimeInterval(globalTTL) })
        }
    }

    @Test func aScopeIsDescribedByItsFirstTeacherAnswerAndTheDescriptionIsStored() async throws {
        try await withWorld { world in
            _ = try await world.service.complete(try Self.request("Can I get a refund?"), info: alice)
            let scope = try #require(world.cache.scopes().first?.scope)
            let expected = ScopeDescription(tenant: "alice", model: "m", systemPrompt: "Classify.")
            #expect(await world.service.scopes.description(of: scope) == expected)
            #expect(await ScopeCatalog(store: world.store).description(of: scope) == expected, "read back from the store")
        }
    }

    @Test func aRequestForLogprobsIsAnsweredByTheTeacherAndItsAnswerCached() async throws {
        try await withWorld { world in
            let question = "What is the exchange rate?"
            _ = try await world.service.complete(try Self.request(question), info: alice)
            let withLogprobs = try await world.service.complete(try Self.request(question, #","logprobs":true"#), info: alice)
            #expect(withLogprobs.source == .teacher, "only the teacher has log probabilities")
            #expect(world.metrics.snapshot.bypasses == [.logprobs: 1])
            #expect(try await world.service.complete(try Self.request(question), info: alice).source == .cache)
            #expect(world.cache.count == 1)
        }
    }

    @Test func promptsLongerThanTheWindowAreNeverMatchedOnTheirBeginning() async throws {
        // ~300 words of shared context push the questions past the embedder's 256 tokens.
        let context = Array(repeating: "Here is the long statement of my account history for this month.", count: 30).joined(separator: " ")
        let first = try Self.request(context + " Can I get a refund?")
        let second = try Self.request(context + " What is the exchange rate?")
        #expect(!Self.embedder.seesWhole(context + " Can I get a refund?"))
        let vectors = try await Self.embedder.embed([context + " Can I get a refund?", context + " What is the exchange rate?"])
        #expect(zip(vectors[0], vectors[1]).reduce(0) { $0 + $1.0 * $1.1 } > 0.9999, "the embedder cannot tell them apart")
        try await withWorld { world in
            #expect(try await world.service.complete(first, info: alice).source == .teacher)
            #expect(try await world.service.complete(second, info: alice).source == .teacher, "not a paraphrase of the first")
            #expect(try await world.service.complete(first, info: alice).source == .cache, "an exact repeat still hits")
            #expect(world.metrics.snapshot.bypasses[.beyondWindow] == 2, "the two misses: an exact hit never asks the tokenizer")
            #expect(world.cache.memory.indexed == 0, "no vector of a prompt the embedder saw in part")
            let short = try await world.service.complete(try Self.request("Here is the long statement of my account history for this month."), info: alice)
            #expect(short.source == .teacher && short.similarity == nil, "nothing indexed to match against")
        }
    }

    @Test func theLeastRecentlyUsedEntryGoesAtTheCap() async throws {
        try await withWorld(configure: { cache, _ in cache.maxEntries = 3 }) { world in
            for question in ["I am still waiting on my card?", "How do I top up my account?", "What is the exchange rate?"] {
                _ = try await world.service.complete(try Self.request(question), info: alice)
                world.clock.advance(by: 1)
            }
            // The oldest is hit, so the second is now the least recently used.
            #expect(try await world.service.complete(try Self.request("I am still waiting on my card?"), info: alice).source == .cache)
            world.clock.advance(by: 1)
            _ = try await world.service.complete(try Self.request("Can I get a refund?"), info: alice)
            #expect(world.cache.count == 3)
            let prompts = try await world.store.cacheEntries(scope: nil, after: 0, limit: 10).map(\.prompt)
            #expect(prompts == ["I am still waiting on my card?", "What is the exchange rate?", "Can I get a refund?"])
            #expect(try await world.service.complete(try Self.request("How do I top up my account?"), info: alice).source == .teacher)
        }
    }

    @Test func commitsThatCrossTheCapTogetherEvictOnlyTheExcess() async throws {
        try await withWorld(configure: { cache, _ in cache.maxEntries = 3 }) { world in
            let questions = [
                "I am still waiting on my card?", "How do I top up my account?", "What is the exchange rate?",
                "Can I get a refund?", "Why was my transfer declined?", "How do I change my PIN?",
                "Where can I withdraw cash?", "Is there a fee for top ups?", "My card was stolen", "How do I verify my identity?",
            ]
            try await withThrowingTaskGroup(of: Void.self) { group in
                for question in questions {
                    group.addTask { _ = try await world.service.complete(try Self.request(question), info: alice) }
                }
                try await group.waitForAll()
            }
            // Two evictions that each deleted the whole excess left fewer than the cap.
            #expect(world.cache.count == 3)
            #expect(try await world.store.cacheEntryCount() == 3)
        }
    }

    @Test func entriesAndIndexesSurviveARestartWithOrWithoutASnapshot() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("distill-restart-\(UUID().uuidString)")
        let scope = Scope(of: try Self.request("x"), tenant: "alice")
        try await withWorld(directory: directory) { world in
            _ = try await world.service.complete(try Self.request("I am still waiting on my card?"), info: alice)
            try await world.cache.snapshotChangedScopes()
        }
        try await withWorld(directory: directory) { world in
            #expect(try await world.store.indexSnapshot(scope: scope.key) != nil)
            // Added after the snapshot: found at start-up by reconciling the index with the store.
            _ = try await world.service.complete(try Self.request("How do I top up my account?"), info: alice)
        }
        try await withWorld(directory: directory) { world in
            #expect(world.cache.count == 2)
            #expect(try await world.service.complete(try Self.request("Still waiting on my card?"), info: alice).source == .cache)
            #expect(try await world.service.complete(try Self.request("how do i top up my account?"), info: alice).source == .cache)
            // A corrupt snapshot is refused and the index rebuilt from the stored vectors.
            try await world.store.saveIndexSnapshot(scope: scope.key, watermark: 1, bytes: Array("DSTLVIDX garbage".utf8))
        }
        try await withWorld(directory: directory) { world in
            let paraphrase = try await world.service.complete(try Self.request("Still waiting on my card?"), info: alice)
            #expect(paraphrase.source == .cache)
            #expect(world.simulator.stats.answered == 0)
        }
    }

    @Test func vectorsOfAnotherModelAreRecomputed() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("distill-model-\(UUID().uuidString)")
        try await withWorld(directory: directory) { world in
            _ = try await world.service.complete(try Self.request("I am still waiting on my card?"), info: alice)
            let id = try #require(try await world.store.cacheEntries(scope: nil, after: 0, limit: 1).first?.id)
            // As if another model had made the stored vector.
            try await world.store.replaceCacheVectors([(id, [Float](repeating: 0.05, count: 384))])
            try await world.store.setMetadata("embedding_model", "other-model@0000")
        }
        try await withWorld(directory: directory) { world in
            let model = try await world.store.metadata("embedding_model")
            #expect(model == world.cache.indexConfiguration.model)
            let paraphrase = try await world.service.complete(try Self.request("Still waiting on my card?"), info: alice)
            #expect(paraphrase.source == .cache, "the re-computed vector finds the paraphrase")
        }
    }

    @Test func aStreamedHitIsAValidEventStream() async throws {
        try await withWorld { world in
            _ = try await world.service.complete(try Self.request("What is the exchange rate?"), info: alice)
            let stream = try await world.service.stream(try Self.request("What is the exchange rate?", #","stream":true,"stream_options":{"include_usage":true}"#), info: alice)
            #expect(stream.source == .cache)
            var wire = ""
            await stream.run { if case .event(let event) = $0 { wire += event.encoded } }
            var parser = ServerSentEventParser()
            let events = try parser.feed(wire.utf8)
            #expect(events.last?.isDone == true)
            let chunks = try events.dropLast().map { try JSONDecoder().decode(ChatCompletionChunk.self, from: Data($0.data.utf8)) }
            #expect(chunks.compactMap { $0.choices.first?.delta.content }.joined() == "exchange_rate")
            #expect(chunks.first?.choices.first?.delta.role == "assistant")
            #expect(chunks.contains { $0.choices.first?.finishReason == "stop" })
            #expect(chunks.last?.usage == Usage(promptTokens: 0, completionTokens: 0))
        }
    }
}
