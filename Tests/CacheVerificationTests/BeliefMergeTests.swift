@testable import CacheVerification
import Foundation
import SeededRandom
import Testing

/// Two nodes that learn of one scope at once, and merge what they learned into the stored belief in turn.
@Suite struct BeliefMergeTests {
    let verifier = CacheVerifier(CacheVerifier.Configuration(maxWrongRate: 0.05))

    /// A node's lookups and lessons from `base`: its belief, its entries' and what it would merge.
    func learn(from base: ScopeBelief?, seed: UInt64) -> (scope: ScopeBelief, entries: [Int64: EntryBelief], unsaved: UnsavedBelief) {
        var generator = SplitMix64(seed: seed)
        var scope = base ?? verifier.newScope()
        var entries: [Int64: EntryBelief] = [:]
        var unsaved = UnsavedBelief(base: base)
        for _ in 0..<60 {
            let id = Int64.random(in: 1...3, using: &generator)
            let candidate = Candidate(
                similarity: Float.random(in: 0.75...0.99, using: &generator), runnerUpSimilarity: nil,
                mismatch: Mismatch(negation: Double.random(in: 0..<1, using: &generator) < 0.2))
            let entry = entries[id] ?? verifier.newEntry()
            let verdict = verifier.decide(candidate, scope: &scope, entry: entry, draw: 1)
            guard verdict.teaches else { continue }
            let wrong = candidate.mismatch.negation || Double.random(in: 0..<1, using: &generator) < 0.05
            if unsaved.baseEntries[id] == nil { unsaved.baseEntries[id] = .some(nil) }
            entries[id] = verifier.learn(verdict, wrong: wrong, scope: &scope, entry: entry)
            unsaved.lessons.append(UnsavedBelief.Lesson(entryID: id, verdict: verdict, wrong: wrong))
        }
        return (scope, entries, unsaved)
    }

    @Test func theSecondWriterAddsItsLessonsToTheFirstsInsteadOfReplacingThem() throws {
        let a = learn(from: nil, seed: 1)
        let b = learn(from: nil, seed: 2)
        try #require(a.scope.lessons > 10 && b.scope.lessons > 10)

        // A writes first: the store still has what A started from (nothing), so A's belief is the merge, as it is.
        let first = verifier.merge(a.unsaved, current: a.scope, currentEntries: a.entries, into: nil, storedEntries: [:])
        #expect(first.scope == a.scope && first.entries == a.entries)

        // B writes second, onto A's: both nodes' counts and lessons.
        let second = verifier.merge(b.unsaved, current: b.scope, currentEntries: b.entries, into: first.scope, storedEntries: first.entries)
        #expect(second.scope.lookups == a.scope.lookups + b.scope.lookups)
        #expect(second.scope.explorations == a.scope.explorations + b.scope.explorations)
        #expect(second.scope.lessons == a.scope.lessons + b.scope.lessons)
        #expect(second.scope.wrongLessons == a.scope.wrongLessons + b.scope.wrongLessons)
        #expect(second.scope.model != a.scope.model && second.scope.model != b.scope.model)
        // The entries both learned of took in both nodes' lessons.
        for id in Set(a.entries.keys).intersection(b.entries.keys) {
            let merged = try #require(second.entries[id])
            #expect(merged.explorations == a.entries[id]!.explorations + b.entries[id]!.explorations)
        }
    }

    /// A node alone writes its belief as it holds it only if the store gives back what it wrote: the merge compares them.
    @Test func aBeliefReadsBackAsItWasWritten() throws {
        let a = learn(from: nil, seed: 3)
        #expect(try JSONDecoder().decode(ScopeBelief.self, from: JSONEncoder().encode(a.scope)) == a.scope)
        for (_, entry) in a.entries { #expect(try JSONDecoder().decode(EntryBelief.self, from: JSONEncoder().encode(entry)) == entry) }
    }
}
