import Testing
@testable import VectorIndex

@Suite struct SnapshotTests {
    /// A small graph with tombstones, free slots and a repaired entry point: every kind of slot.
    static func smallGraph() -> ScopeIndex {
        let index = ScopeIndex(configuration: Workload.configuration(repairThreshold: 0.3))
        for i in 0..<400 { index.insert(id: Int64(i), vector: Workload.vector(i)) }
        for i in stride(from: 0, to: 400, by: 3) { index.remove(id: Int64(i)) }
        for i in 400..<450 { index.insert(id: Int64(i), vector: Workload.vector(i)) }
        for i in stride(from: 1, to: 100, by: 3) { index.remove(id: Int64(i)) }
        return index
    }

    static func smallFlat() -> ScopeIndex {
        let index = ScopeIndex(configuration: Workload.configuration(promotionThreshold: .max))
        for i in 0..<100 { index.insert(id: Int64(i), vector: Workload.vector(i)) }
        for i in stride(from: 0, to: 100, by: 7) { index.remove(id: Int64(i)) }
        return index
    }

    @Test(arguments: [false, true])
    func aRestoredIndexIsTheSameIndex(flat: Bool) throws {
        let original = flat ? Self.smallFlat() : Self.smallGraph()
        let statistics = original.statistics
        #expect(statistics.kind == (flat ? .flat : .hnsw))
        #expect(flat || statistics.tombstones > 0)
        let bytes = original.snapshot(watermark: 4242)
        let (restored, watermark) = try ScopeIndex.restore(from: bytes, configuration: original.configuration)
        #expect(watermark == 4242)
        // Allocated capacity (and so `bytes`) differs: a restored graph is sized to fit.
        #expect(restored.statistics.kind == statistics.kind)
        #expect(restored.statistics.count == statistics.count)
        #expect(restored.statistics.tombstones == statistics.tombstones)
        #expect(restored.ids() == original.ids())
        for query in heldOutQueries.prefix(50) {
            #expect(restored.search(query, k: 10) == original.search(query, k: 10))
        }
        #expect(restored.snapshot(watermark: 4242) == bytes)

        // The level generator's state is part of the snapshot: both grow the same graph.
        for i in 450..<600 {
            original.insert(id: Int64(i), vector: Workload.vector(i))
            restored.insert(id: Int64(i), vector: Workload.vector(i))
        }
        #expect(restored.snapshot(watermark: 1) == original.snapshot(watermark: 1))
    }

    @Test func aFullSizeGraphRoundTrips() throws {
        let index = try Workload.graph()
        #expect(index.count == Workload.count)
        #expect(index.snapshot(watermark: Int64(Workload.count - 1)) == Workload.graphSnapshot)
    }

    @Test func everyTruncationIsRefused() {
        let bytes = Self.smallFlat().snapshot(watermark: 0)
        let configuration = Self.smallFlat().configuration
        for length in 0..<bytes.count {
            #expect(throws: SnapshotError.self) { try ScopeIndex.restore(from: Array(bytes.prefix(length)), configuration: configuration) }
        }
        #expect(throws: SnapshotError.truncated) { try ScopeIndex.restore(from: Array(bytes.prefix(bytes.count - 1)), configuration: configuration) }
        #expect(throws: SnapshotError.truncated) { try ScopeIndex.restore(from: Array(bytes.prefix(10)), configuration: configuration) }
    }

    @Test func everyFlippedByteIsRefused() {
        let graph = ScopeIndex(configuration: Workload.configuration(dimension: 4))
        for (i, v) in randomUnitVectors(count: 40, dimension: 4, seed: 11).enumerated() { graph.insert(id: Int64(i), vector: v) }
        graph.remove(id: 3)
        let bytes = graph.snapshot(watermark: 0)
        for position in bytes.indices {
            var corrupted = bytes
            corrupted[position] ^= 0x10
            #expect(throws: SnapshotError.self) { try ScopeIndex.restore(from: corrupted, configuration: graph.configuration) }
        }
        var corrupted = bytes
        corrupted[SnapshotFormat.preambleSize + 40] ^= 1
        #expect(throws: SnapshotError.checksumMismatch) { try ScopeIndex.restore(from: corrupted, configuration: graph.configuration) }
        corrupted = bytes
        corrupted[0] = UInt8(ascii: "X")
        #expect(throws: SnapshotError.notASnapshot) { try ScopeIndex.restore(from: corrupted, configuration: graph.configuration) }
        corrupted = bytes
        corrupted[8] = 2
        #expect(throws: SnapshotError.unsupportedVersion(2)) { try ScopeIndex.restore(from: corrupted, configuration: graph.configuration) }
        #expect(throws: SnapshotError.malformed("1 bytes after the body")) {
            try ScopeIndex.restore(from: bytes + [0], configuration: graph.configuration)
        }
    }

    @Test func anotherModelsOrShapesSnapshotIsRefused() {
        let original = Self.smallGraph()
        let bytes = original.snapshot(watermark: 0)
        var configuration = original.configuration
        configuration.model = "another-model"
        #expect(throws: SnapshotError.modelMismatch(expected: "another-model", found: "test-model")) {
            try ScopeIndex.restore(from: bytes, configuration: configuration)
        }
        configuration = original.configuration
        configuration.dimension = 384
        #expect(throws: SnapshotError.dimensionMismatch(expected: 384, found: Workload.dimension)) {
            try ScopeIndex.restore(from: bytes, configuration: configuration)
        }
        configuration = original.configuration
        configuration.hnsw.m = 24
        #expect(throws: SnapshotError.parametersMismatch(expected: configuration.hnsw, found: original.configuration.hnsw)) {
            try ScopeIndex.restore(from: bytes, configuration: configuration)
        }
        // efSearch is a query-time setting: a snapshot restores under another one.
        configuration = original.configuration
        configuration.hnsw.efSearch = 10
        #expect(throws: Never.self) { try ScopeIndex.restore(from: bytes, configuration: configuration) }
    }

    /// Content that passes the checksum but breaks an invariant (here: a link out of range)
    /// is refused too, never trusted.
    @Test func anInconsistentSnapshotWithAValidChecksumIsRefused() {
        let graph = ScopeIndex(configuration: Workload.configuration(dimension: 4))
        for (i, v) in randomUnitVectors(count: 10, dimension: 4, seed: 12).enumerated() { graph.insert(id: Int64(i), vector: v) }
        var bytes = graph.snapshot(watermark: 0)
        // Layer-0 lists follow the model string, the fixed fields and the per-slot arrays.
        let header = 24 + 4 + "test-model".utf8.count + 4 + 8 + 1 + 12 + 8 + 8 + 4 + 4 + 8
        let lists = header + 10 * (8 + 1 + 1 + 4 * 4)
        #expect(bytes[lists] > 0)  // slot 0's link count
        bytes[lists + 4] = 200  // its first link, to a slot that does not exist
        var writer = SnapshotWriter(bytes: bytes)
        writer.patch(bytes.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[24...])) }, at: 20)
        #expect(throws: SnapshotError.malformed("slot 0 links to 200 on level 0")) {
            try ScopeIndex.restore(from: writer.bytes, configuration: graph.configuration)
        }
    }

    @Test func aCorruptSnapshotIsRecoveredByARebuild() throws {
        var bytes = try Workload.graph().snapshot(watermark: 99)
        bytes[bytes.count / 2] ^= 0xFF
        let configuration = Workload.configuration()
        #expect(throws: SnapshotError.checksumMismatch) { try ScopeIndex.restore(from: bytes, configuration: configuration) }

        var reports: [Int] = []
        let rebuilt = ScopeIndex(
            configuration: configuration,
            rebuildingFrom: (0..<Workload.count).lazy.map { (id: Int64($0), vector: Workload.vector($0)) },
            progress: { reports.append($0) }
        )
        #expect(reports == [10_000, 20_000, 20_000])
        #expect(rebuilt.count == Workload.count)
        // Same inserts, same seed: the rebuild is the graph that was lost.
        #expect(rebuilt.snapshot(watermark: Int64(Workload.count - 1)) == Workload.graphSnapshot)
    }
}
