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
    let entryID: Int64
    let cachedAnswer: String
    let verdict: CacheVerifier.Verdict

    /// The cache could not judge the candidate yet (or audits it): the teacher answers, not the student.
    public var explores: Bool { verdict.decision == .explore }
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

/// What the cache has learned about its scopes and entries, and what changed since it was last written.
struct Beliefs {
    var scopes: [String: ScopeBelief] = [:]
    var entries: [Int64: (scope: String, belief: EntryBelief)] = [:]
    var changedScopes: Set<String> = []
    var changedEntries: Set<Int64> = []

    mutating func forget(entry id: Int64) {
        entries[id] = nil
        changedEntries.remove(id)
    }
}

/// How a verified lookup ended, for the metrics.
public enum CacheVerificationDecision: String, Sendable, CaseIterable {
    /// Served; sent to the teacher because the cache could not judge yet; a servable candidate
    /// audited; not served (no candidate, or a likely wrong one, or the exploration budget spent).
    case serve, explore, audit, miss
}
