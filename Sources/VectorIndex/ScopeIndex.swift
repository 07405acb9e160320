/// The vector index of one cache scope: an exact flat index while small, an HNSW graph from
/// `promotionThreshold` entries on. Entries are cache row ids with unit vectors of one embedding
/// model; a search returns ids with their cosine similarity.
///
/// ## Concurrency
/// Any number of searches run in parallel with one writer. Writers (`insert`, `remove`,
/// `snapshot`) take turns in arrival order (a ticket lock); the structure is read under the
/// shared side of a readers–writer lock and changed only under its exclusive side. The writer keeps the exclusive
/// side short: the costly part of an insert or a repair — searching the graph for neighbours and
/// running the selection heuristic — only reads the graph, so it runs under the shared lock
/// beside the searches and yields a `LinkPlan`; the exclusive lock is then held just to write the
/// planned lists (microseconds). No other writer can run in between, so the plan is still valid.
/// A promotion or demotion builds the new structure under the shared lock and swaps it in under
/// the exclusive one. A search therefore never waits for a whole insert, repair or rebuild; and a
/// repair, which touches the whole graph, takes the writer's turn one chunk at a time, so that
/// inserts and removes are not held up by it either.
/// Every access to shared state is under these locks (pthread locks, which ThreadSanitizer
/// understands), so there is no data race by construction; the test suite passes under
/// `swift test --sanitize=thread` with no report.
public final class ScopeIndex: @unchecked Sendable {
    public let configuration: IndexConfiguration

    enum Structure {
        case flat(FlatIndex)
        case graph(HNSWGraph)
    }

    private let lock = ReadWriteLock()
    /// Read under `lock` (shared); replaced under `lock` (exclusive) by the writer only.
    private var structure: Structure
    /// Serialises writers in arrival order, and guards their working memory.
    private let writerLock = TicketLock()
    private let writerScratch: SearchScratch
    private var plan = LinkPlan()
    /// Whether a repair round is running (it releases `writerLock` between chunks).
    private var repairing = false
    /// Guards `idleScratch`: search scratch kept so that a search allocates only its result array.
    private let poolLock = Lock()
    private var idleScratch: [SearchScratch] = []

    public convenience init(configuration: IndexConfiguration) {
        let structure: Structure = configuration.promotionThreshold == 0
            ? .graph(HNSWGraph(dimension: configuration.dimension, parameters: configuration.hnsw))
            : .flat(FlatIndex(dimension: configuration.dimension))
        self.init(configuration: configuration, structure: structure)
    }

    init(configuration: IndexConfiguration, structure: Structure) {
        self.configuration = configuration
        self.structure = structure
        writerScratch = Self.makeScratch(configuration)
    }

    /// Builds an index from stored entries, e.g. when the snapshot is missing or refused.
    /// `progress` receives the number of entries inserted after every 10,000 and at the end.
    public convenience init(
        configuration: IndexConfiguration,
        rebuildingFrom entries: some Sequence<(id: Int64, vector: [Float])>,
        progress: ((Int) -> Void)? = nil
    ) {
        self.init(configuration: configuration)
        var inserted = 0
        for entry in entries {
            insert(id: entry.id, vector: entry.vector)
            inserted += 1
            if inserted % 10_000 == 0 { progress?(inserted) }
        }
        progress?(inserted)
    }

    private static func makeScratch(_ configuration: IndexConfiguration) -> SearchScratch {
        SearchScratch(paddedLength: paddedLength(configuration.dimension), maxDegree: 2 * configuration.hnsw.m)
    }

    // MARK: Reading

    /// The `k` entries most similar to `query` (a unit vector), most similar first. `ef` overrides
    /// the configured `efSearch` for an HNSW graph; a flat index is always exact.
    public func search(_ query: [Float], k: Int, ef: Int? = nil) -> [SearchResult] {
        precondition(query.count == configuration.dimension, "query has \(query.count) dimensions, the index \(configuration.dimension)")
        guard k > 0 else { return [] }
        let scratch = poolLock.withLock { idleScratch.popLast() } ?? Self.makeScratch(configuration)
        defer { poolLock.withLock { idleScratch.append(scratch) } }
        scratch.load(query)
        return lock.withReadLock {
            switch structure {
            case .flat(let flat):
                flat.search(scratch.query, k: k, scratch: scratch)
            case .graph(let graph):
                graph.search(scratch.query, k: k, ef: ef ?? configuration.hnsw.efSearch, scratch: scratch)
            }
        }
    }

    /// Live entries: those a search can return.
    public var count: Int {
        lock.withReadLock {
            switch structure {
            case .flat(let flat): flat.count
            case .graph(let graph): graph.liveCount
            }
        }
    }

    public func contains(id: Int64) -> Bool {
        lock.withReadLock {
            switch structure {
            case .flat(let flat): flat.contains(id: id)
            case .graph(let graph): graph.slot(of: id) != nil
            }
        }
    }

    /// The ids of all live entries, in storage order.
    public func ids() -> [Int64] {
        lock.withReadLock {
            switch structure {
            case .flat(let flat): flat.ids
            case .graph(let graph): graph.liveSlots().map { graph.ids[Int($0)] }
            }
        }
    }

    public var statistics: IndexStatistics {
        lock.withReadLock {
            switch structure {
            case .flat(let flat):
                IndexStatistics(kind: .flat, count: flat.count, tombstones: 0, bytes: flat.bytes)
            case .graph(let graph):
                IndexStatistics(kind: .hnsw, count: graph.liveCount, tombstones: graph.tombstones, bytes: graph.bytes)
            }
        }
    }

    // MARK: Writing

    /// Adds `vector` (unit length) under `id`, replacing the vector of an `id` already present.
    public func insert(id: Int64, vector: [Float]) {
        precondition(vector.count == configuration.dimension, "vector has \(vector.count) dimensions, the index \(configuration.dimension)")
        let round: RepairRound? = writerLock.withLock {
            writerScratch.load(vector)
            let source = UnsafePointer(writerScratch.query)
            // Only the writer replaces `structure`, and we are the writer: no lock needed to read it.
            switch structure {
            case .flat(let flat):
                if flat.contains(id: id) || flat.count < configuration.promotionThreshold {
                    lock.withWriteLock { flat.upsert(id: id, vector: source) }
                    return nil
                }
                let graph = lock.withReadLock { buildGraph(from: flat) }
                graph.insert(id: id, vector: source, scratch: writerScratch, plan: &plan)
                lock.withWriteLock { structure = .graph(graph) }
                return nil
            case .graph(let graph):
                let slot = lock.withWriteLock {
                    _ = graph.markDeleted(id: id)  // an old vector of `id` becomes a tombstone
                    return graph.reserve(id: id, vector: source)
                }
                lock.withReadLock { graph.planInsert(slot, into: &plan, scratch: writerScratch) }
                lock.withWriteLock { graph.apply(plan) }
                return startRepairIfNeeded(graph)
            }
        }
        if let round { repair(round) }
    }

    /// Removes the entry of `id`; false if there is none. Searches never return it afterwards.
    ///
    /// The call that brings the tombstones to `repairThreshold` of the graph also runs the repair:
    /// 2.7 s for 100,000 384-d nodes with 20% tombstones (SSE2 baseline build), in chunks between
    /// which other writers take their turn (an insert waited 76 ms at most); searches go on
    /// throughout.
    @discardableResult
    public func remove(id: Int64) -> Bool {
        let (removed, round): (Bool, RepairRound?) = writerLock.withLock {
            switch structure {
            case .flat(let flat):
                return (lock.withWriteLock { flat.remove(id: id) }, nil)
            case .graph(let graph):
                guard lock.withWriteLock({ graph.markDeleted(id: id) }) else { return (false, nil) }
                return (true, startRepairIfNeeded(graph))
            }
        }
        if let round { repair(round) }
        return removed
    }

    /// A repair in progress: the tombstones it frees at the end, and the slots it relinks.
    private struct RepairRound {
        let graph: HNSWGraph
        let tombstones: [UInt32]
        let slots: Int
    }

    /// Slots relinked per hold of the writer lock: about 30 ms of work for 384-d vectors.
    private static let repairChunk = 1024

    /// Called by a writer holding `writerLock`. Once `repairThreshold` of the nodes are
    /// tombstones, starts a repair round for the caller to run after unlocking — or, if the graph
    /// has shrunk below half the promotion threshold, goes back to a flat index.
    private func startRepairIfNeeded(_ graph: HNSWGraph) -> RepairRound? {
        guard !repairing, graph.needsRepair(threshold: configuration.repairThreshold) else { return nil }
        if graph.liveCount < configuration.promotionThreshold / 2 {
            let flat = lock.withReadLock {
                let flat = FlatIndex(dimension: configuration.dimension, capacity: configuration.promotionThreshold)
                for slot in graph.liveSlots() { flat.upsert(id: graph.ids[Int(slot)], vector: graph.vector(slot)) }
                return flat
            }
            lock.withWriteLock { structure = .flat(flat) }
            return nil
        }
        repairing = true
        // Slots handed out later are linked from live search results only: nothing to repair.
        return RepairRound(graph: graph, tombstones: graph.deletedSlots(), slots: graph.slotCount)
    }

    /// Relinks the round's slots a chunk at a time, holding the writer lock for one chunk only,
    /// then frees the round's tombstones. The graph cannot be replaced meanwhile: only a repair
    /// check demotes a graph, and none starts while `repairing`.
    private func repair(_ round: RepairRound) {
        for start in stride(from: 0, to: round.slots, by: Self.repairChunk) {
            let slots = start..<min(start + Self.repairChunk, round.slots)
            writerLock.withLock {
                lock.withReadLock { round.graph.planRepair(slots: slots, into: &plan, scratch: writerScratch) }
                lock.withWriteLock { round.graph.apply(plan) }
            }
        }
        writerLock.withLock {
            lock.withReadLock { round.graph.planRelease(round.tombstones, into: &plan, scratch: writerScratch) }
            lock.withWriteLock { round.graph.apply(plan) }
            repairing = false
        }
    }

    private func buildGraph(from flat: FlatIndex) -> HNSWGraph {
        let graph = HNSWGraph(
            dimension: configuration.dimension, parameters: configuration.hnsw, capacity: max(1024, 2 * flat.count)
        )
        for position in 0..<flat.count {
            graph.insert(id: flat.ids[position], vector: flat.vector(at: position), scratch: writerScratch, plan: &plan)
        }
        return graph
    }

    /// Runs `body` on the structure with writers excluded and searches allowed (for snapshots).
    func withStableStructure<Result>(_ body: (Structure) -> Result) -> Result {
        writerLock.withLock { lock.withReadLock { body(structure) } }
    }
}
