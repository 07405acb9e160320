import Testing
@testable import VectorIndex

@Suite struct RepairTests {
    /// A repair round runs in chunks, and other writes land between them: deletions that make
    /// new tombstones, and inserts. Afterwards the graph must still be valid (the snapshot
    /// decoder checks that no list points at a free slot), return no deleted id, and recall.
    @Test func writesBetweenRepairChunksKeepTheGraphValid() throws {
        let graph = HNSWGraph(dimension: Workload.dimension, parameters: HNSWParameters())
        let scratch = SearchScratch(paddedLength: paddedLength(Workload.dimension), maxDegree: 32)
        var plan = LinkPlan()
        func insert(_ i: Int) {
            Workload.vector(i).withUnsafeBufferPointer {
                graph.insert(id: Int64(i), vector: $0.baseAddress!, scratch: scratch, plan: &plan)
            }
        }
        func relink(_ slots: Range<Int>) {
            graph.planRepair(slots: slots, into: &plan, scratch: scratch)
            graph.apply(plan)
        }
        func release(_ tombstones: [UInt32]) {
            graph.planRelease(tombstones, into: &plan, scratch: scratch)
            graph.apply(plan)
        }
        func roundTrip() throws -> HNSWGraph {
            var writer = SnapshotWriter()
            graph.encode(into: &writer)
            return try writer.bytes.withUnsafeBytes { bytes in
                var reader = SnapshotReader(bytes)
                return try HNSWGraph(decoding: &reader, dimension: Workload.dimension, parameters: graph.parameters)
            }
        }

        for i in 0..<3000 { insert(i) }
        var deleted = Set((0..<3000).filter { $0 % 4 == 0 })
        for i in deleted { #expect(graph.markDeleted(id: Int64(i))) }
        // The entry point is among this round's tombstones, so the round must hand it over.
        #expect(graph.markDeleted(id: graph.ids[Int(graph.entryPoint)]))
        deleted.insert(Int(graph.ids[Int(graph.entryPoint)]))
        let round = graph.deletedSlots()
        let slots = graph.slotCount

        relink(0..<1024)
        for i in (0..<1500).filter({ $0 % 4 == 1 }) {
            #expect(graph.markDeleted(id: Int64(i)))
            deleted.insert(i)
        }
        for i in 3000..<3500 { insert(i) }
        relink(1024..<2048)
        relink(2048..<slots)
        release(round)

        #expect(graph.tombstones == 375)
        #expect(graph.liveCount == 3500 - deleted.count)
        _ = try roundTrip()
        let live = (0..<3500).filter { !deleted.contains($0) }
        let truth = exactIndex(ids: live)
        var hits = 0
        for query in heldOutQueries.prefix(100) {
            let found = query.withUnsafeBufferPointer { graph.search($0.baseAddress!, k: 10, ef: 64, scratch: scratch) }
            #expect(found.allSatisfy { !deleted.contains(Int($0.id)) })
            let expected = Set(truth.search(query, k: 10).map(\.id))
            hits += found.filter { expected.contains($0.id) }.count
        }
        #expect(Double(hits) / 1000 >= 0.95)

        // The next round frees the tombstones made during this one.
        let next = graph.deletedSlots()
        relink(0..<graph.slotCount)
        release(next)
        #expect(graph.tombstones == 0)
        #expect(try roundTrip().liveCount == live.count)
    }
}
