/// Exact search by scanning every vector: for small scopes it is as fast as a graph, needs no
/// build, and is exact. Vectors are kept dense (a removal moves the last one into the hole),
/// so a scan is one sequential pass. Not thread-safe by itself; `ScopeIndex` guards it.
final class FlatIndex {
    let dimension: Int
    let stride: Int
    private(set) var count = 0
    private(set) var capacity = 0
    private(set) var vectors: UnsafeMutablePointer<Float>
    private(set) var ids: [Int64] = []
    private(set) var positions: [Int64: Int] = [:]

    init(dimension: Int, capacity: Int = 16) {
        self.dimension = dimension
        self.stride = paddedLength(dimension)
        vectors = allocate(count: 0)
        reserveCapacity(capacity)
    }

    deinit { vectors.deallocate() }

    var bytes: Int {
        count * stride * 4 + ids.capacity * 8 + dictionaryBytes(capacity: positions.capacity, entryBytes: 8 + 8)
    }

    func contains(id: Int64) -> Bool { positions[id] != nil }

    @inline(__always)
    func vector(at position: Int) -> UnsafeMutablePointer<Float> { vectors + position &* stride }

    /// Stores `vector` (padded to `stride`) under `id`, replacing the vector of an existing `id`.
    func upsert(id: Int64, vector source: UnsafePointer<Float>) {
        let position: Int
        if let existing = positions[id] {
            position = existing
        } else {
            if count == capacity { reserveCapacity(capacity * 2) }
            position = count
            count += 1
            ids.append(id)
            positions[id] = position
        }
        vector(at: position).update(from: source, count: stride)
    }

    func remove(id: Int64) -> Bool {
        guard let position = positions.removeValue(forKey: id) else { return false }
        let last = count - 1
        if position != last {
            vector(at: position).update(from: vector(at: last), count: stride)
            ids[position] = ids[last]
            positions[ids[last]] = position
        }
        ids.removeLast()
        count -= 1
        return true
    }

    /// The exact `k` most similar entries, most similar first.
    func search(_ query: UnsafePointer<Float>, k: Int, scratch: SearchScratch) -> [SearchResult] {
        let vectors = self.vectors, stride = self.stride, count = self.count
        scratch.results.removeAll()
        func consider(_ similarity: Float, _ position: Int) {
            if scratch.results.count < k {
                scratch.results.push(Candidate(key: similarity, slot: UInt32(position)))
            } else if similarity > scratch.results.top.key {
                scratch.results.replaceTop(Candidate(key: similarity, slot: UInt32(position)))
            }
        }
        var position = 0
        while position &+ 4 <= count {
            let p = vectors + position &* stride
            let s = dot4(query, p, p + stride, p + 2 &* stride, p + 3 &* stride, stride)
            for lane in 0..<4 { consider(s[lane], position &+ lane) }
            position &+= 4
        }
        while position < count {
            consider(dot(query, vectors + position &* stride, stride), position)
            position &+= 1
        }
        return ids.withUnsafeBufferPointer { ids in scratch.topResults(k) { ids[Int($0)] } }
    }

    func reserveCapacity(_ newCapacity: Int) {
        guard newCapacity > capacity else { return }
        vectors = reallocate(vectors, used: count * stride, count: newCapacity * stride)
        capacity = newCapacity
        ids.reserveCapacity(newCapacity)
    }
}

// MARK: Snapshot

extension FlatIndex {
    /// count u64, ids count × i64, vectors count × dimension × f32.
    func encode(into writer: inout SnapshotWriter) {
        writer.append(UInt64(count))
        ids.withUnsafeBytes { writer.bytes.append(contentsOf: $0) }
        for position in 0..<count { writer.append(raw: vector(at: position), count: dimension) }
    }

    convenience init(decoding reader: inout SnapshotReader, dimension: Int) throws(SnapshotError) {
        let count = try reader.readCount(bytesEach: 8 + 4 * dimension)
        self.init(dimension: dimension, capacity: max(count, 16))
        let ids = try reader.readArray(Int64.self, count: count)
        for position in 0..<count {
            try reader.copy(into: vector(at: position), count: dimension)
            (vector(at: position) + dimension).initialize(repeating: 0, count: stride - dimension)
        }
        for (position, id) in ids.enumerated() {
            guard positions.updateValue(position, forKey: id) == nil else { throw .malformed("id \(id) appears twice") }
        }
        self.ids = ids
        self.count = count
    }
}
