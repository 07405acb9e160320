import SeededRandom
@testable import VectorIndex

/// The shared workload: 20,000 clustered unit vectors and 200 held-out queries of dimension 128
/// (384 would triple the build time of the suite without changing what the tests show).
enum Workload {
    static let dimension = 128
    static let count = 20_000
    static let generator = ClusteredVectors(dimension: dimension)
    static let vectors = generator.generate(count: count, stream: 1)
    static let queries = generator.generate(count: 200, stream: 2)

    static func vector(_ index: Int) -> [Float] { Array(vectors[(index * dimension)..<((index + 1) * dimension)]) }
    static func query(_ index: Int) -> [Float] { Array(queries[(index * dimension)..<((index + 1) * dimension)]) }

    static func configuration(
        promotionThreshold: Int = 0, repairThreshold: Double = 0.2, dimension: Int = Workload.dimension
    ) -> IndexConfiguration {
        IndexConfiguration(
            model: "test-model", dimension: dimension,
            promotionThreshold: promotionThreshold, repairThreshold: repairThreshold
        )
    }

    /// The graph of all 20,000 vectors, built once and restored by each test that needs it.
    static let graphSnapshot: [UInt8] = {
        let index = ScopeIndex(configuration: configuration())
        for i in 0..<count { index.insert(id: Int64(i), vector: vector(i)) }
        return index.snapshot(watermark: Int64(count - 1))
    }()

    static func graph(repairThreshold: Double = 0.2) throws -> ScopeIndex {
        try ScopeIndex.restore(from: graphSnapshot, configuration: configuration(repairThreshold: repairThreshold)).index
    }
}

/// An exact index over `ids` of the workload: the ground truth.
func exactIndex(ids: some Sequence<Int>) -> ScopeIndex {
    let index = ScopeIndex(configuration: Workload.configuration(promotionThreshold: .max))
    for i in ids { index.insert(id: Int64(i), vector: Workload.vector(i)) }
    return index
}

/// Mean share of the exact top 10 that `index` returns at `ef`, over `queries`.
func recallAt10(_ index: ScopeIndex, truth: ScopeIndex, ef: Int = 64, queries: [[Float]]) -> Double {
    var hits = 0
    for query in queries {
        let expected = Set(truth.search(query, k: 10).map(\.id))
        hits += index.search(query, k: 10, ef: ef).filter { expected.contains($0.id) }.count
    }
    return Double(hits) / Double(10 * queries.count)
}

let heldOutQueries = (0..<200).map(Workload.query)

/// Unit vectors of uniformly random directions.
func randomUnitVectors(count: Int, dimension: Int, seed: UInt64) -> [[Float]] {
    var generator = SplitMix64(seed: seed)
    return (0..<count).map { _ in
        let v = (0..<dimension).map { _ in Float(generator.next() >> 40) * 0x1p-24 - 0.5 }
        let norm = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
        return v.map { $0 / norm }
    }
}

func dotProduct(_ a: [Float], _ b: [Float]) -> Float {
    zip(a, b).reduce(0) { $0 + $1.0 * $1.1 }
}
