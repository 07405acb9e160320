import SeededRandom
import VectorIndex

/// How a similarity threshold trades cache hits for wrong answers, measured on labelled queries
/// (e.g. Banking77 with its intents). The default `cache.similarity_threshold` comes from it.
///
/// Replay: the queries arrive once each, in a seeded random order. A query whose nearest cached
/// query is at least `threshold` similar is served that query's answer — a hit, wrong when their
/// labels differ; otherwise it misses and joins the cache, as a teacher answer would.
public enum ThresholdStudy {
    public struct Row: Codable, Sendable, Equatable {
        public var threshold: Double
        /// Share of queries served from the cache.
        public var hitRate: Double
        /// Share of queries served an answer of another label: the cost of the threshold.
        public var wrongRate: Double
        /// Share of hits that were right.
        public var precision: Double
        /// Share of all pairs of queries with different labels at least `threshold` similar.
        public var differentLabelPairRate: Double

        enum CodingKeys: String, CodingKey {
            case threshold
            case hitRate = "hit_rate"
            case wrongRate = "wrong_rate"
            case precision
            case differentLabelPairRate = "different_label_pair_rate"
        }
    }

    /// `vectors` are unit-length embeddings of the queries, `labels` their labels.
    public static func run(vectors: [[Float]], labels: [String], thresholds: [Double], seed: UInt64) -> [Row] {
        precondition(vectors.count == labels.count && !vectors.isEmpty, "one label per vector")
        let configuration = IndexConfiguration(model: "study", dimension: vectors[0].count, promotionThreshold: Int.max)
        var order = Array(vectors.indices)
        var generator = SplitMix64(seed: seed)
        order.shuffle(using: &generator)

        let pairSimilarities = differentLabelSimilarities(vectors: vectors, labels: labels, configuration: configuration)
        return thresholds.map { threshold in
            let cache = ScopeIndex(configuration: configuration)
            var hits = 0
            var wrong = 0
            for query in order {
                if let nearest = cache.search(vectors[query], k: 1).first, Double(nearest.similarity) >= threshold {
                    hits += 1
                    if labels[Int(nearest.id)] != labels[query] { wrong += 1 }
                } else {
                    cache.insert(id: Int64(query), vector: vectors[query])
                }
            }
            let above = pairSimilarities.count - lowerBound(pairSimilarities, Float(threshold))
            return Row(
                threshold: threshold, hitRate: Double(hits) / Double(vectors.count),
                wrongRate: Double(wrong) / Double(vectors.count),
                precision: hits == 0 ? 1 : Double(hits - wrong) / Double(hits),
                differentLabelPairRate: Double(above) / Double(max(pairSimilarities.count, 1)))
        }
    }

    /// The similarity of every pair of queries with different labels, sorted.
    private static func differentLabelSimilarities(
        vectors: [[Float]], labels: [String], configuration: IndexConfiguration
    ) -> [Float] {
        let all = ScopeIndex(configuration: configuration)
        for (id, vector) in vectors.enumerated() { all.insert(id: Int64(id), vector: vector) }
        var similarities: [Float] = []
        for (query, vector) in vectors.enumerated() {
            for result in all.search(vector, k: vectors.count) where result.id > query && labels[Int(result.id)] != labels[query] {
                similarities.append(result.similarity)
            }
        }
        return similarities.sorted()
    }

    private static func lowerBound(_ sorted: [Float], _ value: Float) -> Int {
        var low = 0
        var high = sorted.count
        while low < high {
            let middle = (low + high) / 2
            if sorted[middle] < value { low = middle + 1 } else { high = middle }
        }
        return low
    }
}
