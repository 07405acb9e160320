import Foundation
import Synchronization
import Testing
import VectorIndex

/// Published by a writer after each removal, so that a reader knows which ids it must no longer see.
private final class Progress: Sendable {
    let removed = Atomic<Int>(0)
}

@Suite struct ConcurrencyTests {
    /// Three readers search while two writers insert and delete (with repairs along the way),
    /// for a fixed number of operations each, on real threads.
    @Test func searchesStayConsistentWhileWritersChangeTheGraph() {
        let dimension = 32
        let configuration = Workload.configuration(promotionThreshold: 256, repairThreshold: 0.1, dimension: dimension)
        let index = ScopeIndex(configuration: configuration)
        let vectors = ClusteredVectors(dimension: dimension, seed: 9).generate(count: 5_000, stream: 1)
        @Sendable func vector(_ i: Int) -> [Float] { Array(vectors[(i * dimension)..<((i + 1) * dimension)]) }

        // Ids 0..<1000 are stable; writer w inserts 1000 + 2000w ..< 3000 + 2000w and removes a
        // third of them in a fixed order.
        for i in 0..<1000 { index.insert(id: Int64(i), vector: vector(i)) }
        let writers = 2, insertsPerWriter = 2000
        @Sendable func removalOrder(_ writer: Int) -> [Int] {
            (0..<insertsPerWriter).filter { $0 % 3 == 2 }.map { 1000 + writer * insertsPerWriter + $0 - 2 }
        }
        let progress = (0..<writers).map { _ in Progress() }
        let failures = Mutex<[String]>([])
        @Sendable func fail(_ message: String) { failures.withLock { $0.append(message) } }

        let group = DispatchGroup()
        func spawn(_ body: @escaping @Sendable () -> Void) {
            group.enter()
            Thread { body(); group.leave() }.start()
        }
        for writer in 0..<writers {
            spawn {
                let removals = removalOrder(writer)
                var next = 0
                for step in 0..<insertsPerWriter {
                    let id = 1000 + writer * insertsPerWriter + step
                    index.insert(id: Int64(id), vector: vector(id))
                    if step % 3 == 2 {
                        if !index.remove(id: Int64(removals[next])) { fail("remove \(removals[next]) failed") }
                        next += 1
                        progress[writer].removed.store(next, ordering: .releasing)
                    }
                }
            }
        }
        let found = Atomic<Int>(0)
        let readers = 3, searchesPerReader = 400
        for reader in 0..<readers {
            spawn {
                let removals = (0..<writers).map(removalOrder)
                let rank = Dictionary(uniqueKeysWithValues: removals.enumerated().flatMap { writer, ids in
                    ids.enumerated().map { (Int64($1), (writer, $0)) }
                })
                for search in 0..<searchesPerReader {
                    let removedBefore = progress.map { $0.removed.load(ordering: .acquiring) }
                    let q = (reader * searchesPerReader + search) % 1000
                    let query = vector(q)
                    let results = index.search(query, k: 10)
                    if results.first?.id == Int64(q) { found.add(1, ordering: .relaxed) }
                    if Set(results.map(\.id)).count != results.count { fail("duplicate ids") }
                    if !zip(results, results.dropFirst()).allSatisfy({ $0.similarity >= $1.similarity }) { fail("unsorted") }
                    for result in results {
                        if let (writer, position) = rank[result.id], position < removedBefore[writer] {
                            fail("returned \(result.id), removed before the search began")
                        }
                        if result.id >= 5000 { fail("unknown id \(result.id)") }
                        else if abs(result.similarity - dotProduct(query, vector(Int(result.id)))) > 1e-4 {
                            fail("similarity of \(result.id) is \(result.similarity)")
                        }
                    }
                }
            }
        }
        group.wait()

        #expect(failures.withLock { $0 }.isEmpty, "\(failures.withLock { $0.prefix(5) })")
        // Approximate search may miss a stable query's own entry now and then; almost never.
        #expect(found.load(ordering: .relaxed) >= readers * searchesPerReader * 98 / 100)
        let removed = Set((0..<writers).flatMap(removalOrder))
        let live = (0..<(1000 + writers * insertsPerWriter)).filter { !removed.contains($0) }
        #expect(index.count == live.count)
        #expect(Set(index.ids()) == Set(live.map(Int64.init)))
        #expect(removed.allSatisfy { !index.contains(id: Int64($0)) })

        let truth = ScopeIndex(configuration: Workload.configuration(promotionThreshold: .max, dimension: dimension))
        for i in live { truth.insert(id: Int64(i), vector: vector(i)) }
        let queries = ClusteredVectors(dimension: dimension, seed: 9).generate(count: 100, stream: 2)
        var hits = 0
        for q in 0..<100 {
            let query = Array(queries[(q * dimension)..<((q + 1) * dimension)])
            let expected = Set(truth.search(query, k: 10).map(\.id))
            hits += index.search(query, k: 10).filter { expected.contains($0.id) }.count
        }
        #expect(Double(hits) / 1000 >= 0.95)
    }
}
