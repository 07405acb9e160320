import Synchronization
import Testing

@testable import Embedding

@Suite struct MemoizingEmbedderTests {
    /// Embeds a text as its length and first byte, and records every text it was asked for.
    final class CountingEmbedder: Embedder {
        let asked = Mutex<[String]>([])
        let identity = EmbeddingModelIdentity(name: "counting", weightsSHA256: "0", dimension: 2)
        func seesWhole(_ text: String) -> Bool { text.count < 10 }
        func embed(_ texts: [String]) async -> [[Float]] {
            asked.withLock { $0 += texts }
            return texts.map { [Float($0.utf8.count), Float($0.utf8.first ?? 0)] }
        }
    }

    @Test func aTextAskedAgainIsNotEmbeddedAgain() async throws {
        let base = CountingEmbedder()
        let memo = MemoizingEmbedder(base, capacity: 8)
        let first = try await memo.embed(["a", "bb", "a"])
        let second = try await memo.embed(["bb", "ccc", "a"])
        #expect(first == [[1, 97], [2, 98], [1, 97]])
        #expect(second == [[2, 98], [3, 99], [1, 97]])
        #expect(base.asked.withLock { $0 } == ["a", "bb", "a", "ccc"], "a repeat within one call is embedded with it")
        #expect(memo.identity == base.identity && memo.seesWhole("short") && !memo.seesWhole("much too long"))
    }

    @Test func itForgetsTheLeastRecentlyUsedBeyondItsCapacity() async throws {
        let base = CountingEmbedder()
        let memo = MemoizingEmbedder(base, capacity: 4)
        _ = try await memo.embed(["a", "b"])  // current: a b
        _ = try await memo.embed(["c"])  // previous: a b; current: c
        _ = try await memo.embed(["a"])  // a moves to the current generation: c a
        _ = try await memo.embed(["d"])  // previous: c a; current: d (b forgotten)
        let before = base.asked.withLock { $0.count }
        _ = try await memo.embed(["a", "c", "d"])
        #expect(base.asked.withLock { $0.count } == before, "the texts used within the last two are remembered")
        _ = try await memo.embed(["b"])
        #expect(base.asked.withLock { $0.last } == "b", "the least recently used was forgotten")
    }

    @Test func longTextsAreNotRemembered() async throws {
        let base = CountingEmbedder()
        let memo = MemoizingEmbedder(base, capacity: 4, maxTextBytes: 3)
        _ = try await memo.embed(["long text", "abc"])
        _ = try await memo.embed(["long text", "abc"])
        #expect(base.asked.withLock { $0 } == ["long text", "abc", "long text"])
    }
}
