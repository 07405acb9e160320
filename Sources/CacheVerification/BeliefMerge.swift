import Foundation

/// What a node learned of a scope since it last read the scope's stored belief: what it needs to
/// merge that into what the store has by then, when nodes sharing a store learn at once.
public struct UnsavedBelief: Sendable, Equatable {
    /// The scope's belief as the node last read or wrote it (nil: none was stored).
    public var base: ScopeBelief?
    /// The beliefs of the entries the lessons are about, as of then (nil inside: none was stored).
    public var baseEntries: [Int64: EntryBelief?] = [:]
    /// The lessons taken in since, in order.
    public var lessons: [Lesson] = []

    public init(base: ScopeBelief?) { self.base = base }

    /// One teacher answer compared with a candidate's (`CacheVerifier.learn`).
    public struct Lesson: Sendable, Equatable {
        public var entryID: Int64
        public var verdict: CacheVerifier.Verdict
        public var wrong: Bool

        public init(entryID: Int64, verdict: CacheVerifier.Verdict, wrong: Bool) {
            (self.entryID, self.verdict, self.wrong) = (entryID, verdict, wrong)
        }
    }

    /// This record followed by a later one of the same scope (`later` started where this one ended).
    public func followed(by later: UnsavedBelief) -> UnsavedBelief {
        var joined = self
        joined.baseEntries.merge(later.baseEntries) { mine, _ in mine }
        joined.lessons += later.lessons
        return joined
    }
}

extension CacheVerifier {
    /// Merges what a node learned (`unsaved`, which took its base to `current` and the lessons'
    /// entries to `currentEntries`) into what the store has now (`stored`, and the stored beliefs
    /// of those entries): the lookups and hits it counted are added to the stored counts, and its
    /// lessons are taken in again after the other nodes'. When the store still has the node's base
    /// (no other node wrote since), the node's own beliefs are the merge, as they are.
    public func merge(
        _ unsaved: UnsavedBelief, current: ScopeBelief, currentEntries: [Int64: EntryBelief], into stored: ScopeBelief?,
        storedEntries: [Int64: EntryBelief]
    ) -> (scope: ScopeBelief, entries: [Int64: EntryBelief]) {
        guard stored != unsaved.base else { return (current, currentEntries) }
        let base = unsaved.base ?? newScope()
        var merged = stored ?? newScope()
        merged.lookups += current.lookups - base.lookups
        merged.hits += current.hits - base.hits
        merged.explorations += current.explorations - base.explorations
        merged.audits += current.audits - base.audits
        merged.expectedWrongHits += current.expectedWrongHits - base.expectedWrongHits
        merged.boundWrongHits += current.boundWrongHits - base.boundWrongHits
        if let recent = current.recent {
            merged.recent = recent.moved(
                from: base.recent ?? RecentHits(), onto: merged.recent ?? RecentHits(), hits: current.hits - base.hits,
                window: configuration.window)
        }
        var entries: [Int64: EntryBelief] = [:]
        for lesson in unsaved.lessons {
            let entry = entries[lesson.entryID] ?? storedEntries[lesson.entryID] ?? newEntry()
            entries[lesson.entryID] = learn(lesson.verdict, wrong: lesson.wrong, scope: &merged, entry: entry)
        }
        return (merged, entries)
    }
}

extension RecentHits {
    /// The `count` hits these sums took in after `base`, taken in after `other`'s instead: each hit
    /// decays the sums before it alike, so the ones after `base` add the same to `other`'s decayed sums.
    func moved(from base: RecentHits, onto other: RecentHits, hits count: Int, window: Double) -> RecentHits {
        let decay = pow(1 - 1 / window, Double(max(count, 0)))
        var moved = RecentHits()
        moved.hits = other.hits * decay + (hits - base.hits * decay)
        moved.boundSum = other.boundSum * decay + (boundSum - base.boundSum * decay)
        return moved
    }
}
