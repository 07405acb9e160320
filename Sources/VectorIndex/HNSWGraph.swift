import SeededRandom
/// Slot states. A slot is a node's position in the graph's parallel arrays.
enum SlotState {
    static let live: UInt8 = 0
    /// Removed by the caller: never returned, still traversed until the next repair.
    static let deleted: UInt8 = 1
    /// Unlinked by a repair, ready for reuse by an insert.
    static let free: UInt8 = 2
    /// Holds the vector of an insert in progress: unreachable, and not yet under its id.
    static let reserved: UInt8 = 3
}

/// Neighbour lists computed while holding the shared lock, then written under the exclusive one.
/// Only the single writer computes and applies plans, so a plan is still valid when applied.
struct LinkPlan {
    struct Update {
        var slot: UInt32
        var level: Int
        var start: Int
        var count: Int
    }

    var updates: [Update] = []
    var pool: [UInt32] = []
    /// The inserted slot, whose id becomes visible when the plan is applied.
    var inserted: UInt32?
    /// A new entry point and top level (`level == -1`: the graph is now empty).
    var entry: (slot: UInt32, level: Int)?
    /// Tombstones a repair has unlinked.
    var freed: [UInt32] = []

    mutating func reset() {
        updates.removeAll(keepingCapacity: true)
        pool.removeAll(keepingCapacity: true)
        freed.removeAll(keepingCapacity: true)
        inserted = nil
        entry = nil
    }

    mutating func setList(of slot: UInt32, level: Int, to list: some Sequence<UInt32>) {
        let start = pool.count
        pool.append(contentsOf: list)
        updates.append(Update(slot: slot, level: level, start: start, count: pool.count - start))
    }

    mutating func appendToLastList(_ slot: UInt32) {
        pool.append(slot)
        updates[updates.count - 1].count += 1
    }
}

/// A hierarchical navigable small-world graph over unit Float32 vectors; similarity is the dot
/// product. Not thread-safe by itself: `ScopeIndex` runs searches and `plan…` calls under a shared
/// lock and every mutating call under an exclusive one.
///
/// Layout: vectors (zero-padded to 16 floats, 64-byte aligned) in one contiguous block and
/// layer-0 lists in another (`[count, n₀, …, n₂ₘ₋₁]` per slot), so the hot loop is pointer
/// arithmetic only. Upper-layer lists, which about 1/m of the nodes have, are one small
/// allocation per such node, as in hnswlib.
final class HNSWGraph {
    let dimension: Int
    /// Floats per stored vector: `dimension` rounded up to 16.
    let stride: Int
    let parameters: HNSWParameters
    let maxDegree0: Int
    let linkStride0: Int
    let linkStrideUpper: Int

    private(set) var capacity = 0
    /// Slots ever handed out; each slot below it is live, deleted, free or reserved.
    private(set) var slotCount = 0
    private(set) var vectors: UnsafeMutablePointer<Float>
    private(set) var links0: UnsafeMutablePointer<UInt32>
    private(set) var upperLinks: UnsafeMutablePointer<UnsafeMutablePointer<UInt32>?>
    private(set) var levels: UnsafeMutablePointer<UInt8>
    private(set) var states: UnsafeMutablePointer<UInt8>
    private(set) var ids: UnsafeMutablePointer<Int64>
    private(set) var slotsByID: [Int64: UInt32] = [:]
    /// Kept in descending order so that `popLast` reuses the lowest slot.
    private(set) var freeSlots: [UInt32] = []
    private(set) var entryPoint: UInt32 = 0
    /// The entry point's level; -1 when the graph has no nodes.
    private(set) var maxLevel = -1
    private(set) var tombstones = 0
    private(set) var levelGenerator: SplitMix64

    /// Levels are capped so that they fit the snapshot's byte and any plausible m.
    static let levelCap = 31
    /// Candidates at least this similar to a kept neighbour count as its duplicates.
    static let duplicateSimilarity: Float = 0.9999

    var liveCount: Int { slotsByID.count }

    init(dimension: Int, parameters: HNSWParameters, capacity: Int = 1024) {
        self.dimension = dimension
        self.stride = paddedLength(dimension)
        self.parameters = parameters
        self.maxDegree0 = 2 * parameters.m
        self.linkStride0 = 1 + 2 * parameters.m
        self.linkStrideUpper = 1 + parameters.m
        self.levelGenerator = SplitMix64(seed: parameters.seed)
        vectors = allocate(count: 0)
        links0 = allocate(count: 0)
        upperLinks = allocate(count: 0)
        levels = allocate(count: 0)
        states = allocate(count: 0)
        ids = allocate(count: 0)
        reserveCapacity(capacity)
    }

    deinit {
        for slot in 0..<slotCount { upperLinks[slot]?.deallocate() }
        vectors.deallocate()
        links0.deallocate()
        upperLinks.deallocate()
        levels.deallocate()
        states.deallocate()
        ids.deallocate()
    }

    // MARK: Access

    @inline(__always)
    func vector(_ slot: UInt32) -> UnsafeMutablePointer<Float> { vectors + Int(slot) &* stride }

    /// The list of `slot` on `level`: element 0 is the count, the neighbours follow.
    @inline(__always)
    func neighbors(_ slot: UInt32, level: Int) -> UnsafeMutablePointer<UInt32> {
        if level == 0 { return links0 + Int(slot) &* linkStride0 }
        return upperLinks[Int(slot)].unsafelyUnwrapped + (level &- 1) &* linkStrideUpper
    }

    @inline(__always)
    func maxDegree(level: Int) -> Int { level == 0 ? maxDegree0 : parameters.m }

    func slot(of id: Int64) -> UInt32? { slotsByID[id] }

    func liveSlots() -> [UInt32] {
        (0..<UInt32(slotCount)).filter { states[Int($0)] == SlotState.live }
    }

    var bytes: Int {
        let perSlot = stride * 4 + linkStride0 * 4 + MemoryLayout<UnsafeMutablePointer<UInt32>?>.stride + 1 + 1 + 8
        var upper = 0
        for slot in 0..<slotCount where levels[slot] > 0 { upper += Int(levels[slot]) * linkStrideUpper * 4 }
        let map = dictionaryBytes(capacity: slotsByID.capacity, entryBytes: 8 + 4)
        return slotCount * perSlot + upper + map + freeSlots.capacity * 4
    }

    // MARK: Search

    /// The `k` live nodes most similar to `query` (padded to `stride`), most similar first.
    func search(_ query: UnsafePointer<Float>, k: Int, ef: Int, scratch: SearchScratch) -> [SearchResult] {
        guard maxLevel >= 0 else { return [] }
        var current = entryPoint
        var similarity = dot(query, vector(current), stride)
        for level in Swift.stride(from: maxLevel, to: 0, by: -1) {
            (current, similarity) = greedySearch(query, from: current, similarity: similarity, level: level)
        }
        searchLayer(query, entry: current, level: 0, ef: max(ef, k), scratch: scratch)
        let ids = self.ids
        return scratch.topResults(k) { ids[Int($0)] }
    }

    /// Hill-climbs one layer from `start` to a local maximum of similarity (ef = 1).
    private func greedySearch(
        _ query: UnsafePointer<Float>, from start: UInt32, similarity: Float, level: Int
    ) -> (UInt32, Float) {
        var current = start
        var best = similarity
        var improved = true
        while improved {
            improved = false
            let list = neighbors(current, level: level)
            for index in 0..<Int(list[0]) {
                let neighbor = list[index &+ 1]
                let s = dot(query, vector(neighbor), stride)
                if s > best {
                    best = s
                    current = neighbor
                    improved = true
                }
            }
        }
        return (current, best)
    }

    /// Best-first search of one layer (the paper's Algorithm 2). Leaves the `ef` most similar live
    /// nodes in `scratch.results`. Tombstones are traversed, since they keep the graph connected
    /// until a repair, but never enter the results.
    func searchLayer(
        _ query: UnsafePointer<Float>, entry: UInt32, level: Int, ef: Int, scratch: SearchScratch
    ) {
        scratch.visited.reset(slotCount: slotCount)
        searchLayer(
            query, entry: entry, level: level, ef: ef,
            visited: &scratch.visited, candidates: &scratch.candidates, results: &scratch.results,
            batch: scratch.batch, similarities: scratch.similarities
        )
    }

    private func searchLayer(
        _ query: UnsafePointer<Float>, entry: UInt32, level: Int, ef: Int,
        visited: inout VisitedSet, candidates: inout CandidateHeap, results: inout CandidateHeap,
        batch: UnsafeMutablePointer<UInt32>, similarities: UnsafeMutablePointer<Float>
    ) {
        let vectors = self.vectors, states = self.states, stride = self.stride
        candidates.removeAll()
        results.removeAll()
        _ = visited.insert(entry)
        let entrySimilarity = dot(query, vectors + Int(entry) &* stride, stride)
        candidates.push(Candidate(key: -entrySimilarity, slot: entry))
        if states[Int(entry)] == SlotState.live { results.push(Candidate(key: entrySimilarity, slot: entry)) }
        // The least similarity a node needs to enter the results: none until there are ef of them.
        var floor = results.count >= ef ? results.top.key : -Float.infinity

        while !candidates.isEmpty {
            let current = candidates.pop()
            if -current.key < floor { break }
            // Gather the unvisited neighbours first, then score them four at a time, so that
            // several vectors are being fetched from memory at once.
            let list = neighbors(current.slot, level: level)
            var fresh = 0
            for index in 0..<Int(list[0]) {
                let neighbor = list[index &+ 1]
                if visited.insert(neighbor) {
                    batch[fresh] = neighbor
                    fresh &+= 1
                }
            }
            var index = 0
            while index &+ 4 <= fresh {
                let s = dot4(
                    query,
                    vectors + Int(batch[index]) &* stride, vectors + Int(batch[index &+ 1]) &* stride,
                    vectors + Int(batch[index &+ 2]) &* stride, vectors + Int(batch[index &+ 3]) &* stride,
                    stride
                )
                similarities[index] = s[0]
                similarities[index &+ 1] = s[1]
                similarities[index &+ 2] = s[2]
                similarities[index &+ 3] = s[3]
                index &+= 4
            }
            while index < fresh {
                similarities[index] = dot(query, vectors + Int(batch[index]) &* stride, stride)
                index &+= 1
            }
            for index in 0..<fresh {
                let s = similarities[index]
                guard s > floor else { continue }
                let neighbor = batch[index]
                candidates.push(Candidate(key: -s, slot: neighbor))
                guard states[Int(neighbor)] == SlotState.live else { continue }
                if results.count < ef {
                    results.push(Candidate(key: s, slot: neighbor))
                } else {
                    results.replaceTop(Candidate(key: s, slot: neighbor))
                }
                if results.count >= ef { floor = results.top.key }
            }
        }
    }

    // MARK: Insert

    /// Stores the vector (padded to `stride`) in a fresh or recycled slot and draws its level.
    /// The node is unreachable, and its id unknown, until `apply` of its plan.
    func reserve(id: Int64, vector source: UnsafePointer<Float>) -> UInt32 {
        let slot: UInt32
        if let recycled = freeSlots.popLast() {
            slot = recycled
        } else {
            if slotCount == capacity { reserveCapacity(max(1024, capacity * 2)) }
            slot = UInt32(slotCount)
            slotCount += 1
        }
        vector(slot).update(from: source, count: stride)
        let level = randomLevel()
        levels[Int(slot)] = UInt8(level)
        states[Int(slot)] = SlotState.reserved
        ids[Int(slot)] = id
        (links0 + Int(slot) &* linkStride0).initialize(repeating: 0, count: linkStride0)
        upperLinks[Int(slot)] = level > 0 ? allocateLinks(count: level * linkStrideUpper) : nil
        return slot
    }

    /// Computes the links of a reserved node and the changed lists of its new neighbours
    /// (the paper's Algorithm 1). Reads the graph only.
    func planInsert(_ slot: UInt32, into plan: inout LinkPlan, scratch: SearchScratch) {
        plan.reset()
        plan.inserted = slot
        let level = Int(levels[Int(slot)])
        let query = UnsafePointer(vector(slot))
        if level > maxLevel { plan.entry = (slot, level) }
        guard maxLevel >= 0 else { return }

        var current = entryPoint
        var similarity = dot(query, vector(current), stride)
        for upper in Swift.stride(from: maxLevel, to: level, by: -1) {
            (current, similarity) = greedySearch(query, from: current, similarity: similarity, level: upper)
        }
        for layer in Swift.stride(from: min(level, maxLevel), through: 0, by: -1) {
            searchLayer(query, entry: current, level: layer, ef: parameters.efConstruction, scratch: scratch)
            scratch.results.drainDescending(into: &scratch.found)
            guard let closest = scratch.found.first else { continue }
            current = closest.slot
            // New nodes get m links on every layer (as in hnswlib); lists may grow to 2m on layer 0.
            selectNeighbors(scratch.found, limit: parameters.m, into: &scratch.selected)
            plan.setList(of: slot, level: layer, to: scratch.selected)
            let chosen = plan.updates[plan.updates.count - 1]
            for index in chosen.start..<(chosen.start + chosen.count) {
                planBacklink(from: plan.pool[index], to: slot, level: layer, into: &plan, scratch: scratch)
            }
        }
    }

    /// Adds `slot` to the list of `neighbor`, re-selecting with the heuristic when it is full.
    private func planBacklink(
        from neighbor: UInt32, to slot: UInt32, level: Int, into plan: inout LinkPlan, scratch: SearchScratch
    ) {
        let list = neighbors(neighbor, level: level)
        let count = Int(list[0])
        let existing = UnsafeBufferPointer(start: list + 1, count: count)
        if count < maxDegree(level: level) {
            plan.setList(of: neighbor, level: level, to: existing)
            plan.appendToLastList(slot)
            return
        }
        // Full: choose among the old neighbours and the new node. Tombstones are dropped here:
        // a repair would unlink them anyway.
        let base = UnsafePointer(vector(neighbor))
        scratch.pending.removeAll(keepingCapacity: true)
        scratch.pending.append(Candidate(key: dot(base, vector(slot), stride), slot: slot))
        for other in existing where states[Int(other)] == SlotState.live {
            scratch.pending.append(Candidate(key: dot(base, vector(other), stride), slot: other))
        }
        sortDescending(&scratch.pending)
        selectNeighbors(scratch.pending, limit: maxDegree(level: level), into: &scratch.selected)
        plan.setList(of: neighbor, level: level, to: scratch.selected)
    }

    /// The neighbour-selection heuristic (the paper's Algorithm 4, hnswlib's
    /// getNeighborsByHeuristic2): walking `candidates` from the most similar to the base, keep one
    /// unless it is more similar to an already kept neighbour than to the base — so lists point in
    /// diverse directions and long links survive.
    ///
    /// Near-duplicates of a kept neighbour count as covered by it even when they also duplicate
    /// the base (the plain rule keeps them: all similarities tie). Otherwise a run of identical
    /// vectors links only to itself, and a search that enters it cannot leave.
    private func selectNeighbors(_ candidates: [Candidate], limit: Int, into selected: inout [UInt32]) {
        selected.removeAll(keepingCapacity: true)
        for candidate in candidates {
            if selected.count == limit { break }
            let v = UnsafePointer(vector(candidate.slot))
            let bound = min(candidate.key, Self.duplicateSimilarity)
            var keep = true
            for kept in selected where dot(v, vector(kept), stride) > bound {
                keep = false
                break
            }
            if keep { selected.append(candidate.slot) }
        }
    }

    // MARK: Delete and repair

    /// Turns the node of `id` into a tombstone. False if `id` is not in the graph.
    func markDeleted(id: Int64) -> Bool {
        guard let slot = slotsByID.removeValue(forKey: id) else { return false }
        states[Int(slot)] = SlotState.deleted
        tombstones += 1
        return true
    }

    func needsRepair(threshold: Double) -> Bool {
        tombstones > 0 && Double(tombstones) >= threshold * Double(tombstones + liveCount)
    }

    /// The slots of the current tombstones: what a repair round will unlink and free.
    func deletedSlots() -> [UInt32] {
        (0..<UInt32(slotCount)).filter { states[Int($0)] == SlotState.deleted }
    }

    /// Plans, for the live nodes among `slots`, new lists without tombstones: each list that
    /// points at one is re-selected from its live neighbours and the live nodes its tombstones
    /// lead to (FreshDiskANN's delete consolidation, with HNSW's heuristic). Reads the graph only.
    ///
    /// A repair round runs this over every slot, one chunk at a time, with other writes in
    /// between. None of them can point a list at a tombstone of the round again: new lists come
    /// from live search results, and re-selected ones keep live nodes only.
    func planRepair(slots: Range<Int>, into plan: inout LinkPlan, scratch: SearchScratch) {
        plan.reset()
        for slot in slots where states[slot] == SlotState.live {
            for level in 0...Int(levels[slot]) {
                planRelink(UInt32(slot), level: level, into: &plan, scratch: scratch)
            }
        }
    }

    private func planRelink(_ slot: UInt32, level: Int, into plan: inout LinkPlan, scratch: SearchScratch) {
        let list = neighbors(slot, level: level)
        let existing = UnsafeBufferPointer(start: list + 1, count: Int(list[0]))
        guard existing.contains(where: { states[Int($0)] != SlotState.live }) else { return }

        // The live neighbours, and the live nodes behind each tombstone neighbour. Tombstones
        // further away are expanded only while too few live nodes have been found.
        scratch.visited.reset(slotCount: slotCount)
        _ = scratch.visited.insert(slot)
        scratch.queue.removeAll(keepingCapacity: true)
        scratch.pending.removeAll(keepingCapacity: true)
        let base = UnsafePointer(vector(slot))
        func consider(_ node: UInt32) {
            guard scratch.visited.insert(node) else { return }
            if states[Int(node)] == SlotState.live {
                scratch.pending.append(Candidate(key: dot(base, vector(node), stride), slot: node))
            } else {
                scratch.queue.append(node)
            }
        }
        existing.forEach(consider)
        let direct = scratch.queue.count
        var head = 0
        while head < scratch.queue.count && (head < direct || scratch.pending.count < maxDegree(level: level)) {
            let tombstone = scratch.queue[head]
            head += 1
            let next = neighbors(tombstone, level: level)
            UnsafeBufferPointer(start: next + 1, count: Int(next[0])).forEach(consider)
        }
        sortDescending(&scratch.pending)
        selectNeighbors(scratch.pending, limit: maxDegree(level: level), into: &scratch.selected)
        plan.setList(of: slot, level: level, to: scratch.selected)
    }

    /// Plans the end of a repair round: frees `tombstones` (those the round started with, which
    /// no live list points at any more), drops them from the lists of tombstones made since —
    /// so that no list points at a free slot — and hands a freed entry point over to a node of
    /// the highest level left (live if one is; tombstones are traversable). Reads the graph only.
    func planRelease(_ tombstones: [UInt32], into plan: inout LinkPlan, scratch: SearchScratch) {
        plan.reset()
        scratch.visited.reset(slotCount: slotCount)
        for tombstone in tombstones { _ = scratch.visited.insert(tombstone) }
        plan.freed = tombstones
        for slot in 0..<UInt32(slotCount) where states[Int(slot)] == SlotState.deleted && !scratch.visited.contains(slot) {
            for level in 0...Int(levels[Int(slot)]) {
                let list = neighbors(slot, level: level)
                let existing = UnsafeBufferPointer(start: list + 1, count: Int(list[0]))
                if existing.contains(where: { scratch.visited.contains($0) }) {
                    plan.setList(of: slot, level: level, to: existing.filter { !scratch.visited.contains($0) })
                }
            }
        }
        guard maxLevel >= 0 && scratch.visited.contains(entryPoint) else { return }
        var entry = (slot: UInt32(0), level: -1, live: false)
        for slot in 0..<UInt32(slotCount) where states[Int(slot)] != SlotState.free && !scratch.visited.contains(slot) {
            let level = Int(levels[Int(slot)]), live = states[Int(slot)] == SlotState.live
            if level > entry.level || (level == entry.level && live && !entry.live) { entry = (slot, level, live) }
        }
        plan.entry = (entry.slot, entry.level)
    }

    // MARK: Apply

    /// Writes a plan from `planInsert`, `planRepair` or `planRelease`.
    func apply(_ plan: LinkPlan) {
        plan.pool.withUnsafeBufferPointer { pool in
            for update in plan.updates {
                let list = neighbors(update.slot, level: update.level)
                list[0] = UInt32(update.count)
                (list + 1).update(from: pool.baseAddress! + update.start, count: update.count)
                // Zero the tail so that snapshots of equal graphs are equal bytes.
                (list + 1 + update.count).update(repeating: 0, count: maxDegree(level: update.level) - update.count)
            }
        }
        if let slot = plan.inserted {
            states[Int(slot)] = SlotState.live
            slotsByID[ids[Int(slot)]] = slot
        }
        for slot in plan.freed { release(slot) }
        if !plan.freed.isEmpty {
            freeSlots.append(contentsOf: plan.freed)
            freeSlots.sort(by: >)
        }
        if let entry = plan.entry {
            entryPoint = entry.slot
            maxLevel = entry.level
        }
    }

    private func release(_ slot: UInt32) {
        let index = Int(slot)
        if states[index] == SlotState.deleted { tombstones -= 1 }
        states[index] = SlotState.free
        levels[index] = 0
        ids[index] = 0
        upperLinks[index]?.deallocate()
        upperLinks[index] = nil
        (links0 + index * linkStride0).update(repeating: 0, count: linkStride0)
        vector(slot).update(repeating: 0, count: stride)
    }

    /// Reserve, plan and apply in one go, for graphs no other thread can see yet.
    func insert(id: Int64, vector: UnsafePointer<Float>, scratch: SearchScratch, plan: inout LinkPlan) {
        let slot = reserve(id: id, vector: vector)
        planInsert(slot, into: &plan, scratch: scratch)
        apply(plan)
    }

    // MARK: Storage

    private func allocateLinks(count: Int) -> UnsafeMutablePointer<UInt32> {
        let links: UnsafeMutablePointer<UInt32> = allocate(count: count)
        links.initialize(repeating: 0, count: count)
        return links
    }

    /// Levels follow P(level ≥ l) = m^-l, the paper's distribution with mL = 1/ln m, drawn as a
    /// run of 1-in-m successes — exact, and no logarithm.
    private func randomLevel() -> Int {
        let threshold = UInt64.max / UInt64(parameters.m)
        var level = 0
        while level < Self.levelCap && levelGenerator.next() < threshold { level += 1 }
        return level
    }

    func reserveCapacity(_ newCapacity: Int) {
        guard newCapacity > capacity else { return }
        // Slots are initialized when handed out (`reserve`, decoding), not here.
        vectors = reallocate(vectors, used: slotCount * stride, count: newCapacity * stride)
        links0 = reallocate(links0, used: slotCount * linkStride0, count: newCapacity * linkStride0)
        upperLinks = reallocate(upperLinks, used: slotCount, count: newCapacity)
        levels = reallocate(levels, used: slotCount, count: newCapacity)
        states = reallocate(states, used: slotCount, count: newCapacity)
        ids = reallocate(ids, used: slotCount, count: newCapacity)
        capacity = newCapacity
    }
}

/// A Swift dictionary keeps keys and values in arrays of a power-of-two bucket count, filled to
/// at most 3/4 (its `capacity`), and one bit per bucket.
func dictionaryBytes(capacity: Int, entryBytes: Int) -> Int {
    let buckets = capacity * 4 / 3
    return buckets * entryBytes + buckets / 8
}

/// Sorts by key, largest first; ties by slot, so that equal inputs give equal graphs.
func sortDescending(_ candidates: inout [Candidate]) {
    candidates.sort { $0.key > $1.key || ($0.key == $1.key && $0.slot < $1.slot) }
}

/// Cache-line-aligned storage for `count` trivial values, left uninitialized: the pages of a
/// large block are mapped when first written, so spare capacity costs address space, not memory.
func allocate<T>(count: Int) -> UnsafeMutablePointer<T> {
    UnsafeMutableRawPointer.allocate(byteCount: max(count, 1) * MemoryLayout<T>.stride, alignment: 64)
        .bindMemory(to: T.self, capacity: max(count, 1))
}

/// Moves the first `used` values of `old` into a new block for `count`.
func reallocate<T>(_ old: UnsafeMutablePointer<T>, used: Int, count: Int) -> UnsafeMutablePointer<T> {
    let new: UnsafeMutablePointer<T> = allocate(count: count)
    new.update(from: old, count: used)
    old.deallocate()
    return new
}

// MARK: Snapshot

extension HNSWGraph {
    /// slot count u64, entry point u32, top level i32, level generator state u64; then per slot:
    /// ids i64, states u8, levels u8, vectors (dimension f32), layer-0 lists ((1 + 2m) u32);
    /// then the upper-layer lists (level × (1 + m) u32) of each slot with a level above 0.
    func encode(into writer: inout SnapshotWriter) {
        writer.append(UInt64(slotCount))
        writer.append(entryPoint)
        writer.append(Int32(maxLevel))
        writer.append(levelGenerator.state)
        writer.append(raw: ids, count: slotCount)
        writer.append(raw: states, count: slotCount)
        writer.append(raw: levels, count: slotCount)
        for slot in 0..<UInt32(slotCount) { writer.append(raw: vector(slot), count: dimension) }
        writer.append(raw: links0, count: slotCount * linkStride0)
        for slot in 0..<slotCount where levels[slot] > 0 {
            writer.append(raw: upperLinks[slot]!, count: Int(levels[slot]) * linkStrideUpper)
        }
    }

    convenience init(decoding reader: inout SnapshotReader, dimension: Int, parameters: HNSWParameters) throws(SnapshotError) {
        let linkStride0 = 1 + 2 * parameters.m
        let slotCount = try reader.readCount(bytesEach: 8 + 1 + 1 + 4 * dimension + 4 * linkStride0)
        let entryPoint = try reader.read(UInt32.self)
        let maxLevel = Int(try reader.read(Int32.self))
        let generatorState = try reader.read(UInt64.self)
        self.init(dimension: dimension, parameters: parameters, capacity: max(slotCount, 16))
        upperLinks.initialize(repeating: nil, count: slotCount)  // before anything can throw: deinit reads them
        self.slotCount = slotCount
        self.entryPoint = entryPoint
        self.maxLevel = maxLevel
        levelGenerator = SplitMix64(seed: generatorState)
        try reader.copy(into: ids, count: slotCount)
        try reader.copy(into: states, count: slotCount)
        try reader.copy(into: levels, count: slotCount)
        for slot in 0..<UInt32(slotCount) {
            try reader.copy(into: vector(slot), count: dimension)
            (vector(slot) + dimension).initialize(repeating: 0, count: stride - dimension)
        }
        try reader.copy(into: links0, count: slotCount * linkStride0)
        for slot in 0..<slotCount where levels[slot] > 0 {
            let links = allocateLinks(count: Int(levels[slot]) * linkStrideUpper)
            upperLinks[slot] = links
            try reader.copy(into: links, count: Int(levels[slot]) * linkStrideUpper)
        }
        if let problem = validate() { throw .malformed(problem) }
    }

    /// Checks every invariant a search or an insert relies on, and rebuilds the derived state
    /// (id map, free list, tombstone count). Returns the first violation found.
    private func validate() -> String? {
        guard (-1...Self.levelCap).contains(maxLevel) else { return "top level \(maxLevel)" }
        if maxLevel >= 0 {
            guard Int(entryPoint) < slotCount else { return "entry point \(entryPoint) out of range" }
            let state = states[Int(entryPoint)]
            guard state == SlotState.live || state == SlotState.deleted, Int(levels[Int(entryPoint)]) == maxLevel else {
                return "entry point \(entryPoint) is not a node of the top level"
            }
        }
        slotsByID.reserveCapacity(slotCount)
        for slot in 0..<UInt32(slotCount) {
            let index = Int(slot)
            let level = Int(levels[index])
            switch states[index] {
            case SlotState.live:
                guard slotsByID.updateValue(slot, forKey: ids[index]) == nil else { return "id \(ids[index]) appears twice" }
            case SlotState.deleted:
                tombstones += 1
            case SlotState.free:
                guard level == 0, links0[index * linkStride0] == 0 else { return "free slot \(slot) has links" }
                freeSlots.append(slot)
                continue
            default:
                return "slot \(slot) has state \(states[index])"
            }
            guard level <= maxLevel else { return "slot \(slot) is above the top level" }
            for layer in 0...level {
                let list = neighbors(slot, level: layer)
                let count = Int(list[0])
                guard count <= maxDegree(level: layer) else { return "slot \(slot) has \(count) links on level \(layer)" }
                for neighbor in UnsafeBufferPointer(start: list + 1, count: count) {
                    guard Int(neighbor) < slotCount, neighbor != slot,
                          states[Int(neighbor)] != SlotState.free, Int(levels[Int(neighbor)]) >= layer
                    else { return "slot \(slot) links to \(neighbor) on level \(layer)" }
                }
            }
        }
        freeSlots.reverse()
        return nil
    }
}
