import Foundation
import Testing

@testable import Embedding

/// Deterministic: a batch is due when it is full or `maxWait` has passed; with an hour's wait only fullness counts.
@Suite(.timeLimit(.minutes(1))) struct BatchingEmbedderTests {
    static let texts = ["my card is lost", "where is my pin?", "pins", "the card", "lost lost lost", "?", "", "my pin"]

    func concurrently(_ batcher: BatchingEmbedder, _ texts: [String]) async -> [[Float]] {
        await withTaskGroup(of: (Int, [Float]).self) { group in
            for (index, text) in texts.enumerated() {
                group.addTask { (index, await batcher.embed([text])[0]) }
            }
            var results = [[Float]](repeating: [], count: texts.count)
            for await (index, embedding) in group { results[index] = embedding }
            return results
        }
    }

    @Test func concurrentRequestsBecomeOneBatchWithTheSameResults() async throws {
        let model = try TinyModel()
        let alone = try Self.texts.map { try model.encoder().embed([$0])[0] }
        let batcher = BatchingEmbedder(encoder: try model.encoder(), maxBatchSize: Self.texts.count, maxWait: .seconds(3600))
        let results = await concurrently(batcher, Self.texts)
        #expect(batcher.statistics == .init(batches: 1, texts: Self.texts.count))
        for (a, b) in zip(results, alone) {
            #expect(zip(a, b).allSatisfy { abs($0 - $1) <= 1e-6 })
        }
        #expect(batcher.identity == (try model.encoder().identity))
    }

    @Test func batchesNeverExceedTheMaximum() async throws {
        let batcher = BatchingEmbedder(encoder: try TinyModel().encoder(), maxBatchSize: 2, maxWait: .seconds(3600))
        _ = await concurrently(batcher, Array(Self.texts.prefix(6)))
        #expect(batcher.statistics == .init(batches: 3, texts: 6))
    }

    @Test func aRequestLargerThanABatchRunsAlone() async throws {
        let batcher = BatchingEmbedder(encoder: try TinyModel().encoder(), maxBatchSize: 2, maxWait: .seconds(3600))
        let results = await batcher.embed(Array(Self.texts.prefix(3)))
        #expect(results.count == 3)
        #expect(batcher.statistics == .init(batches: 1, texts: 3))
    }

    @Test func aLoneRequestRunsWhenItsWaitIsOver() async throws {
        let batcher = BatchingEmbedder(encoder: try TinyModel().encoder(), maxBatchSize: 32, maxWait: .zero)
        #expect(await batcher.embed(["my card"]).count == 1)
        #expect(await batcher.embed(["my pin", "the card"]).count == 2)
        #expect(batcher.statistics == .init(batches: 2, texts: 3))
    }

    @Test func noTextsNoBatch() async throws {
        let batcher = BatchingEmbedder(encoder: try TinyModel().encoder(), maxBatchSize: 4, maxWait: .seconds(3600))
        #expect(await batcher.embed([]).isEmpty)
        #expect(batcher.statistics == .init(batches: 0, texts: 0))
    }
}
