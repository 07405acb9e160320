/// A node and a key: the similarity for result sets, its negation for candidate queues
/// (so that one min-heap type serves both).
struct Candidate {
    var key: Float
    var slot: UInt32
}

/// A binary min-heap of candidates in a buffer reused across searches.
struct CandidateHeap: ~Copyable {
    private var base: UnsafeMutablePointer<Candidate>
    private var capacity: Int
    private(set) var count = 0

    init(capacity: Int) {
        self.capacity = max(capacity, 16)
        base = .allocate(capacity: self.capacity)
    }

    deinit { base.deallocate() }

    var isEmpty: Bool { count == 0 }

    /// The smallest key. Only valid when not empty.
    var top: Candidate { base[0] }

    mutating func removeAll() { count = 0 }

    mutating func push(_ element: Candidate) {
        if count == capacity { grow() }
        var index = count
        count &+= 1
        while index > 0 {
            let parent = (index &- 1) >> 1
            if base[parent].key <= element.key { break }
            base[index] = base[parent]
            index = parent
        }
        base[index] = element
    }

    mutating func pop() -> Candidate {
        let top = base[0]
        count &-= 1
        if count > 0 { siftDown(base[count]) }
        return top
    }

    /// Replaces the smallest element: one sift instead of a pop and a push.
    mutating func replaceTop(_ element: Candidate) { siftDown(element) }

    /// Empties the heap into `output`, largest key first.
    mutating func drainDescending(into output: inout [Candidate]) {
        output.removeAll(keepingCapacity: true)
        let n = count
        output.reserveCapacity(n)
        for _ in 0..<n { output.append(pop()) }
        output.reverse()
    }

    private mutating func siftDown(_ element: Candidate) {
        var index = 0
        while true {
            var child = 2 &* index &+ 1
            if child >= count { break }
            if child &+ 1 < count && base[child &+ 1].key < base[child].key { child &+= 1 }
            if element.key <= base[child].key { break }
            base[index] = base[child]
            index = child
        }
        base[index] = element
    }

    private mutating func grow() {
        let larger = UnsafeMutablePointer<Candidate>.allocate(capacity: capacity * 2)
        larger.moveInitialize(from: base, count: count)
        base.deallocate()
        base = larger
        capacity *= 2
    }
}

/// Which slots a search has seen: a 16-bit epoch per slot, so starting a search is O(1)
/// (hnswlib's VisitedList). The marks are cleared only when the epoch wraps.
struct VisitedSet: ~Copyable {
    private var marks: UnsafeMutablePointer<UInt16>
    private var capacity = 0
    private var epoch: UInt16 = 0

    init() { marks = .allocate(capacity: 0) }

    deinit { marks.deallocate() }

    mutating func reset(slotCount: Int) {
        if slotCount > capacity {
            marks.deallocate()
            capacity = max(slotCount, capacity * 2)
            marks = .allocate(capacity: capacity)
            marks.initialize(repeating: 0, count: capacity)
            epoch = 0
        }
        epoch &+= 1
        if epoch == 0 {
            marks.update(repeating: 0, count: capacity)
            epoch = 1
        }
    }

    @inline(__always)
    func contains(_ slot: UInt32) -> Bool { marks[Int(slot)] == epoch }

    /// Marks `slot`; true if it was not marked in this search yet.
    @inline(__always)
    mutating func insert(_ slot: UInt32) -> Bool {
        let index = Int(slot)
        if marks[index] == epoch { return false }
        marks[index] = epoch
        return true
    }
}

/// Working memory for one search or one writer operation, reused so that a search allocates
/// only its result array. Used by one thread at a time (see `ScopeIndex`'s scratch pool).
final class SearchScratch: @unchecked Sendable {
    /// The zero-padded query (or the vector being linked, for the writer).
    let query: UnsafeMutablePointer<Float>
    let queryLength: Int
    var visited = VisitedSet()
    var candidates = CandidateHeap(capacity: 256)
    var results = CandidateHeap(capacity: 256)
    /// Unvisited neighbours of the node being expanded, and their similarities.
    let batch: UnsafeMutablePointer<UInt32>
    let similarities: UnsafeMutablePointer<Float>
    let batchCapacity: Int
    /// Sorted candidate lists for the neighbour-selection heuristic (writer only).
    var found: [Candidate] = []
    var pending: [Candidate] = []
    var queue: [UInt32] = []
    var selected: [UInt32] = []

    init(paddedLength: Int, maxDegree: Int) {
        queryLength = paddedLength
        query = UnsafeMutableRawPointer.allocate(byteCount: paddedLength * 4, alignment: 64)
            .bindMemory(to: Float.self, capacity: paddedLength)
        query.initialize(repeating: 0, count: paddedLength)
        batchCapacity = maxDegree
        batch = .allocate(capacity: maxDegree)
        similarities = .allocate(capacity: maxDegree)
    }

    deinit {
        query.deallocate()
        batch.deallocate()
        similarities.deallocate()
    }

    /// Copies `vector` into `query`; the padding stays zero.
    func load(_ vector: [Float]) {
        vector.withUnsafeBufferPointer { query.update(from: $0.baseAddress!, count: $0.count) }
    }

    /// The `k` best of `results`, as ids, most similar first.
    func topResults(_ k: Int, ids: (UInt32) -> Int64) -> [SearchResult] {
        results.drainDescending(into: &found)
        return found.prefix(k).map { SearchResult(id: ids($0.slot), similarity: $0.key) }
    }
}
