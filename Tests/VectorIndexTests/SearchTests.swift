import SeededRandom
import Testing
@testable import VectorIndex

@Suite struct SearchTests {
    @Test func flatSearchIsExact() {
        let vectors = randomUnitVectors(count: 500, dimension: 20, seed: 1)
        let index = ScopeIndex(configuration: Workload.configuration(promotionThreshold: .max, dimension: 20))
        for (i, v) in vectors.enumerated() { index.insert(id: Int64(i), vector: v) }
        #expect(index.statistics.kind == .flat)
        for query in randomUnitVectors(count: 20, dimension: 20, seed: 2) {
            let expected = vectors.indices
                .map { SearchResult(id: Int64($0), similarity: dotProduct(query, vectors[$0])) }
                .sorted { $0.similarity > $1.similarity }
                .prefix(7)
            let found = index.search(query, k: 7)
            #expect(found.map(\.id) == expected.map(\.id))
            for (f, e) in zip(found, expected) { #expect(abs(f.similarity - e.similarity) < 1e-5) }
        }
    }

    /// Measured: 0.9755.
    @Test func graphRecallAt10IsAtLeast95PercentAtEf64() throws {
        let index = try Workload.graph()
        #expect(index.statistics == IndexStatistics(kind: .hnsw, count: Workload.count, tombstones: 0, bytes: index.statistics.bytes))
        let recall = recallAt10(index, truth: exactIndex(ids: 0..<Workload.count), queries: heldOutQueries)
        #expect(recall >= 0.95, "recall@10 \(recall)")
    }

    /// Every id whose hash puts it in the first 30%: deterministic, and spread over all clusters.
    static func isDeleted(_ i: Int) -> Bool {
        var generator = SplitMix64(seed: UInt64(i))
        return generator.next() % 100 < 30
    }

    @Test(arguments: [1.0, 0.1])
    func deletedEntriesAreNeverReturnedAndRecallHolds(repairThreshold: Double) throws {
        // 1.0: tombstones only (no repair until everything is deleted); 0.1: repaired as it goes.
        let index = try Workload.graph(repairThreshold: repairThreshold)
        let deleted = (0..<Workload.count).filter(Self.isDeleted)
        for i in deleted { #expect(index.remove(id: Int64(i))) }
        #expect(!index.remove(id: Int64(deleted[0])))
        let live = (0..<Workload.count).filter { !Self.isDeleted($0) }
        #expect(index.count == live.count)
        let statistics = index.statistics
        if repairThreshold == 1 {
            #expect(statistics.tombstones == deleted.count)
        } else {
            #expect(Double(statistics.tombstones) < repairThreshold * Double(Workload.count))
        }

        // Asking for a deleted vector itself is the hardest test: it would be its own top hit.
        let deletedIDs = Set(deleted.map(Int64.init))
        for i in deleted.prefix(500) {
            let found = index.search(Workload.vector(i), k: 10)
            #expect(found.count == 10)
            #expect(found.allSatisfy { !deletedIDs.contains($0.id) })
        }
        let truth = exactIndex(ids: live)
        // Measured: 0.991 with tombstones only, 0.986 after repairs.
        let recall = recallAt10(index, truth: truth, queries: heldOutQueries + deleted.prefix(200).map(Workload.vector))
        #expect(recall >= 0.95, "recall@10 over the live set \(recall)")

        // Inserting again reuses the slots repairs have freed (at least 20% of all): no growth.
        let bytesBefore = index.statistics.bytes
        for (n, i) in deleted.enumerated() {
            index.insert(id: Int64(i + Workload.count), vector: Workload.vector(i))
            if repairThreshold < 1 && n + 1 == Workload.count / 5 { #expect(index.statistics.bytes <= bytesBefore + bytesBefore / 20) }
        }
        #expect(index.count == Workload.count)
        let refilled = exactIndex(ids: 0..<Workload.count)
        var hits = 0
        for query in heldOutQueries {
            let expected = Set(refilled.search(query, k: 10).map { Self.isDeleted(Int($0.id)) ? $0.id + Int64(Workload.count) : $0.id })
            hits += index.search(query, k: 10).filter { expected.contains($0.id) }.count
        }
        #expect(Double(hits) / Double(10 * heldOutQueries.count) >= 0.95)
    }

    @Test func duplicateVectorsDoNotTrapSearches() {
        let dimension = 32
        let index = ScopeIndex(configuration: Workload.configuration(dimension: dimension))
        let truth = ScopeIndex(configuration: Workload.configuration(promotionThreshold: .max, dimension: dimension))
        let distinct = randomUnitVectors(count: 3000, dimension: dimension, seed: 3)
        var id: Int64 = 0
        func insert(_ v: [Float]) {
            index.insert(id: id, vector: v)
            truth.insert(id: id, vector: v)
            id += 1
        }
        // Copies first, so that the entry point and the early graph are all duplicates.
        for copies in 0..<10 {
            for _ in 0..<(copies == 0 ? 400 : 40) { insert(distinct[copies]) }
        }
        distinct.dropFirst(10).forEach(insert)

        // Ids of equal vectors are interchangeable: a hit is anything as similar as the 10th best.
        var hits = 0
        let queries = randomUnitVectors(count: 100, dimension: dimension, seed: 4) + distinct.prefix(10)
        for query in queries {
            let tenth = truth.search(query, k: 10)[9].similarity
            hits += index.search(query, k: 10).filter { $0.similarity >= tenth - 1e-6 }.count
        }
        let recall = Double(hits) / Double(10 * queries.count)
        #expect(recall >= 0.95, "recall@10 \(recall)")
    }

    @Test func anIndexOfIdenticalVectorsStillAnswers() {
        let index = ScopeIndex(configuration: Workload.configuration(dimension: 8))
        let v = randomUnitVectors(count: 1, dimension: 8, seed: 5)[0]
        for i in 0..<300 { index.insert(id: Int64(i), vector: v) }
        let found = index.search(v, k: 10, ef: 300)
        #expect(!found.isEmpty && found.allSatisfy { $0.similarity > 0.9999 })
    }

    @Test func aScopeStartsFlatBecomesAGraphAndShrinksBackToFlat() {
        let index = ScopeIndex(configuration: Workload.configuration(promotionThreshold: 1000, repairThreshold: 0.25))
        for i in 0..<1000 { index.insert(id: Int64(i), vector: Workload.vector(i)) }
        #expect(index.statistics.kind == .flat)
        index.insert(id: 1000, vector: Workload.vector(1000))
        #expect(index.statistics.kind == .hnsw)
        #expect(index.count == 1001)
        for i in 0...1000 { #expect(index.search(Workload.vector(i), k: 1).first?.id == Int64(i)) }

        // Below half the threshold, the next repair goes back to a flat index.
        for i in 0..<700 { index.remove(id: Int64(i)) }
        #expect(index.statistics.kind == .flat)
        #expect(index.count == 301)
        #expect(Set(index.ids()) == Set((700...1000).map(Int64.init)))
        for i in 700...1000 { #expect(index.search(Workload.vector(i), k: 1).first?.id == Int64(i)) }
    }

    @Test(arguments: [IndexStatistics.Kind.flat, .hnsw])
    func insertingAnExistingIDReplacesItsVector(kind: IndexStatistics.Kind) {
        let index = ScopeIndex(configuration: Workload.configuration(promotionThreshold: kind == .flat ? .max : 0))
        for i in 0..<300 { index.insert(id: Int64(i), vector: Workload.vector(i)) }
        index.insert(id: 7, vector: Workload.vector(500))
        #expect(index.count == 300)
        #expect(index.search(Workload.vector(500), k: 1).first?.id == 7)
        #expect(index.search(Workload.vector(7), k: 1).first?.id != 7)
        #expect(index.statistics.kind == kind)
    }

    @Test(arguments: [IndexStatistics.Kind.flat, .hnsw])
    func edgeCases(kind: IndexStatistics.Kind) {
        let index = ScopeIndex(configuration: Workload.configuration(promotionThreshold: kind == .flat ? .max : 0, repairThreshold: 0.5))
        let query = Workload.vector(0)
        #expect(index.search(query, k: 10).isEmpty)
        #expect(!index.remove(id: 1))
        for i in 0..<5 { index.insert(id: Int64(i), vector: Workload.vector(i)) }
        #expect(index.search(query, k: 0).isEmpty)
        #expect(index.search(query, k: 10, ef: 1).count == 5)
        #expect(index.contains(id: 4) && !index.contains(id: 5))
        for i in 0..<5 { #expect(index.remove(id: Int64(i))) }
        #expect(index.count == 0 && index.search(query, k: 10).isEmpty)
        index.insert(id: 9, vector: query)
        #expect(index.search(query, k: 10).map(\.id) == [9])
    }
}
