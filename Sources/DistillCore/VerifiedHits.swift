import CacheVerification
import Foundation

/// What a semantic lookup found: a hit to serve, or none, with the best similarity seen and, when
/// the teacher's answer will teach the verifier, the lesson to take from it.
public struct SemanticLookup: Sendable {
    public var hit: CacheHit?
    public var best: Float?
    public var lesson: CacheLesson?

    public init(hit: CacheHit? = nil, best: Float?, lesson: CacheLesson? = nil) {
        self.hit = hit
        self.best = best
        self.lesson = lesson
    }
}

/// A lookup whose candidate was not served: once the teacher has answered it, `SemanticCache.learn`
/// compares the two answers and updates the scope's and the entry's beliefs.
public struct CacheLesson: Sendable {
    let scope: String
    /// The nearest entry, as the hit it would have been.
    let candidate: CacheHit
    let verdict: CacheVerifier.Verdict

    /// The cache could not judge the candidate yet (or audits it): the teacher answers, not the student.
    public var explores: Bool { verdict.decision == .explore }

    /// The hit the cache would have served but for its audit: within the bound, so it may still be
    /// served when the teacher cannot answer.
    public var auditedHit: CacheHit? { verdict.isAudit ? candidate : nil }
}

/// A scope's verified-cache counts since it was created, and the wrong-hit rate the model expects
/// of the hits it served, with its upper bound (nil before the first hit).
public struct ScopeVerification: Sendable, Equatable {
    public var maxError: Double
    public var lookups: Int
    public var hits: Int
    public var explorations: Int
    public var audits: Int
    /// Teacher answers compared with a candidate's, and how many differed.
    public var lessons: Int
    public var wrongLessons: Int
    public var estimatedWrongRate: Double?
    public var wrongRateUpperBound: Double?

    init(maxError: Double, belief: ScopeBelief?) {
        self.maxError = maxError
        lookups = belief?.lookups ?? 0
        hits = belief?.hits ?? 0
        explorations = belief?.explorations ?? 0
        audits = belief?.audits ?? 0
        lessons = belief?.lessons ?? 0
        wrongLessons = belief?.wrongLessons ?? 0
        estimatedWrongRate = belief?.wrongHitRate?.estimate
        wrongRateUpperBound = belief?.wrongHitRate?.upperBound
    }
}

/// What the cache has learned about its scopes and entries, and, per scope, what it learned since
/// it last merged the scope into the store (`UnsavedBelief`).
struct Beliefs {
    var scopes: [String: ScopeBelief] = [:]
    var entries: [Int64: (scope: String, belief: EntryBelief)] = [:]
    var unsaved: [String: UnsavedBelief] = [:]

    /// A scope's belief after a lookup counted in it.
    mutating func set(_ belief: ScopeBelief, scope: String) {
        if unsaved[scope] == nil { unsaved[scope] = UnsavedBelief(base: scopes[scope]) }
        scopes[scope] = belief
    }

    /// A scope's and an entry's beliefs after a lesson.
    mutating func set(_ belief: ScopeBelief, entry: EntryBelief, after lesson: UnsavedBelief.Lesson, scope: String) {
        set(belief, scope: scope)
        if unsaved[scope]?.baseEntries.keys.contains(lesson.entryID) == false {
            unsaved[scope]?.baseEntries[lesson.entryID] = .some(entries[lesson.entryID]?.belief)
        }
        unsaved[scope]?.lessons.append(lesson)
        entries[lesson.entryID] = (scope, entry)
    }

    mutating func forget(entry id: Int64) {
        entries[id] = nil
    }

    /// What a flush merges into the store: per scope learned in, what it learned since its last
    /// merge, its belief now and its lessons' entries'; forgotten here until `adopt` or `restore`.
    struct Taken: Sendable {
        var scope: String
        var unsaved: UnsavedBelief
        var current: ScopeBelief
        var currentEntries: [Int64: EntryBelief]
    }

    mutating func take() -> [Taken] {
        defer { unsaved = [:] }
        return unsaved.compactMap { scope, unsaved in
            scopes[scope].map { current in
                Taken(
                    scope: scope, unsaved: unsaved, current: current,
                    currentEntries: unsaved.baseEntries.keys.reduce(into: [:]) { $0[$1] = entries[$1]?.belief })
            }
        }
    }

    /// The flush failed: what it took is unsaved again, before what was learned meanwhile.
    mutating func restore(_ taken: [Taken]) {
        for taken in taken {
            unsaved[taken.scope] = unsaved[taken.scope].map(taken.unsaved.followed) ?? taken.unsaved
        }
    }

    /// The flush merged what it took into the store, which now has `merged`: what was learned
    /// meanwhile is merged into it the same way, and the result held from now on.
    mutating func adopt(
        _ merged: (scopes: [String: ScopeBelief], entries: [Int64: EntryBelief]), for taken: [Taken],
        verifiers: [String: CacheVerifier]
    ) {
        for taken in taken {
            // Nothing merged (an undecodable write), or no other node wrote since this one's last merge: as held.
            guard let stored = merged.scopes[taken.scope], let verifier = verifiers[taken.scope], stored != taken.current else { continue }
            let written = taken.currentEntries.keys.reduce(into: [Int64: EntryBelief]()) { $0[$1] = merged.entries[$1] }
            guard var later = unsaved[taken.scope], let current = scopes[taken.scope] else {
                scopes[taken.scope] = stored
                for (id, belief) in written where entries[id] != nil { entries[id] = (taken.scope, belief) }
                continue
            }
            for (id, belief) in written where later.baseEntries.keys.contains(id) { later.baseEntries[id] = .some(belief) }
            let storedEntries = later.baseEntries.compactMapValues { $0 }
            let laterEntries = later.baseEntries.keys.reduce(into: [Int64: EntryBelief]()) { $0[$1] = entries[$1]?.belief }
            let rebased = verifier.merge(
                later, current: current, currentEntries: laterEntries, into: stored, storedEntries: storedEntries)
            scopes[taken.scope] = rebased.scope
            for (id, belief) in written.merging(rebased.entries, uniquingKeysWith: { $1 }) where entries[id] != nil {
                entries[id] = (taken.scope, belief)
            }
            later.base = stored
            unsaved[taken.scope] = later
        }
    }
}

/// How a verified lookup ended, for the metrics.
public enum CacheVerificationDecision: String, Sendable, CaseIterable {
    /// Served; sent to the teacher because the cache could not judge yet; a servable candidate
    /// audited; not served (no candidate, or a likely wrong one, or the exploration budget spent).
    case serve, explore, audit, miss
}
