/// HNSW graph parameters (Malkov & Yashunin 2018; names as in hnswlib).
public struct HNSWParameters: Sendable, Hashable {
    /// Links per node on the upper layers; layer 0 keeps up to `2 * m`.
    public var m: Int
    /// Candidate list size while linking a new node: higher builds slower and recalls better.
    public var efConstruction: Int
    /// Default candidate list size of a search (at least `k` is always used).
    public var efSearch: Int
    /// Seeds the level generator, so that the same inserts build the same graph.
    public var seed: UInt64

    public init(m: Int = 16, efConstruction: Int = 200, efSearch: Int = 64, seed: UInt64 = 0x5EED) {
        precondition(m >= 2 && m <= 255, "m must be in 2...255")
        precondition(efConstruction >= 1 && efSearch >= 1, "ef must be positive")
        self.m = m
        self.efConstruction = efConstruction
        self.efSearch = efSearch
        self.seed = seed
    }
}

/// Everything that fixes what an index holds and how it behaves.
public struct IndexConfiguration: Sendable, Hashable {
    /// Identity of the embedding model whose vectors the index holds, e.g.
    /// `"all-MiniLM-L6-v2@<sha256 of the weights>"`. A snapshot of another model is refused.
    public var model: String
    /// Vector length (384 for MiniLM-L6). Vectors must be unit length: similarity is the dot product.
    public var dimension: Int
    public var hnsw: HNSWParameters
    /// Live entries at which a flat (exact) index becomes an HNSW graph. A graph whose live count
    /// falls below half of this becomes flat again at its next repair.
    public var promotionThreshold: Int
    /// Share of a graph's nodes that may be tombstones before the deleting call repairs the graph:
    /// rewires every list that points at a tombstone and frees the tombstones' slots for reuse.
    public var repairThreshold: Double

    public init(
        model: String,
        dimension: Int,
        hnsw: HNSWParameters = HNSWParameters(),
        promotionThreshold: Int = 2048,
        repairThreshold: Double = 0.2
    ) {
        precondition(dimension > 0, "dimension must be positive")
        precondition(promotionThreshold >= 0, "promotionThreshold must not be negative")
        precondition(repairThreshold > 0 && repairThreshold <= 1, "repairThreshold must be in (0, 1]")
        self.model = model
        self.dimension = dimension
        self.hnsw = hnsw
        self.promotionThreshold = promotionThreshold
        self.repairThreshold = repairThreshold
    }
}

/// One hit of a search.
public struct SearchResult: Sendable, Hashable {
    public var id: Int64
    /// Cosine similarity of the (unit) query and entry vectors: their dot product. Higher is closer.
    public var similarity: Float

    public init(id: Int64, similarity: Float) {
        self.id = id
        self.similarity = similarity
    }
}

/// What an index holds, for metrics and logs.
public struct IndexStatistics: Sendable, Hashable {
    public enum Kind: String, Sendable, Hashable {
        case flat
        case hnsw
    }

    public var kind: Kind
    /// Entries a search can return.
    public var count: Int
    /// Deleted nodes still in the graph, awaiting repair (always 0 for a flat index).
    public var tombstones: Int
    /// Bytes of the vectors, links and id maps of the entries and tombstones held (spare
    /// capacity, never written, is not resident and not counted; nor is allocator overhead).
    public var bytes: Int
}
