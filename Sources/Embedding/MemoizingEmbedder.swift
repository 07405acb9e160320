import Synchronization

/// An `Embedder` that remembers the vectors of the texts it embedded last, so that a text asked
/// again soon (a popular question, a retried request) costs a dictionary lookup instead of a pass
/// of the model. A text's vector depends on nothing but the text, so a remembered one is as good as a new one.
///
/// It keeps up to `capacity` texts in two generations: new vectors go into the current one, a
/// vector found in the previous one moves to the current one, and when the current one is half
/// the capacity it becomes the previous one (whose texts are forgotten). So a text used within the
/// last `capacity / 2` distinct texts is always remembered: least recently used, approximately,
/// without a list to maintain. Texts longer than `maxTextBytes` are not remembered, so that a
/// few long prompts cannot hold much memory.
public final class MemoizingEmbedder: Embedder {
    public let base: any Embedder
    public let capacity: Int
    public let maxTextBytes: Int
    private let generations = Mutex(Generations())

    private struct Generations {
        var current: [String: [Float]] = [:]
        var previous: [String: [Float]] = [:]
    }

    public init(_ base: any Embedder, capacity: Int = 1024, maxTextBytes: Int = 2048) {
        precondition(capacity >= 2, "capacity must hold two generations")
        self.base = base
        self.capacity = capacity
        self.maxTextBytes = maxTextBytes
    }

    public var identity: EmbeddingModelIdentity { base.identity }

    public func seesWhole(_ text: String) -> Bool { base.seesWhole(text) }

    public func embed(_ texts: [String]) async throws -> [[Float]] {
        var vectors = generations.withLock { generations in
            texts.map { text -> [Float]? in
                if let vector = generations.current[text] { return vector }
                guard let vector = generations.previous.removeValue(forKey: text) else { return nil }
                remember(text, vector, in: &generations)
                return vector
            }
        }
        let missing = vectors.indices.filter { vectors[$0] == nil }
        if !missing.isEmpty {
            let computed = try await base.embed(missing.map { texts[$0] })
            generations.withLock { generations in
                for (index, vector) in zip(missing, computed) where texts[index].utf8.count <= maxTextBytes {
                    remember(texts[index], vector, in: &generations)
                }
            }
            for (index, vector) in zip(missing, computed) { vectors[index] = vector }
        }
        return vectors.map { $0! }
    }

    private func remember(_ text: String, _ vector: [Float], in generations: inout Generations) {
        if generations.current.count >= capacity / 2, generations.current[text] == nil {
            generations.previous = generations.current
            generations.current = [:]
        }
        generations.current[text] = vector
    }
}
