import DistillAPI

/// What the domain reports as it works; the application turns it into metrics (Prometheus series
/// and the counts `cachectl stats` shows).
public protocol DomainMetrics: Sendable {
    func recordCacheLookup(_ result: CacheLookupResult, duration: Duration)
    func recordCacheBypass(_ reason: CacheBypassReason)
    func recordCacheEvictions(_ reason: CacheRemovalReason, count: Int)
    /// How the verifier decided a scope's semantic lookup, and the wrong-hit rate its model expects
    /// of the scope's hits so far, with its upper bound (nil before the first hit).
    func recordCacheVerification(scope: String, decision: CacheVerificationDecision, wrongHitRate: (estimate: Double, upperBound: Double)?)
    /// A teacher answer compared with a candidate's cached one: `wrong` when they differed.
    func recordCacheLesson(scope: String, wrong: Bool)
    func setCacheEntries(_ count: Int)
    func recordStoreFailure(_ operation: StoreOperation)
    /// One teacher call (retries included): `outcome` is `success` or `TeacherError.outcome`.
    func recordTeacherCall(outcome: String, duration: Duration, usage: Usage?)
    func recordStudentDecision(_ action: Students.Decision.Action)
    func recordStudentAudit(agrees: Bool, scope: String, liveAgreement: Double)
    func recordStudentSuspension()
    func recordDistillRun(_ outcome: DistillRunOutcome, trainingSeconds: Double)
}

public enum CacheLookupResult: String, Sendable, CaseIterable {
    case exactHit = "exact_hit", semanticHit = "semantic_hit", miss, error
    /// A paraphrase the verified cache could not judge yet: sent to the teacher to learn.
    case explore
}

public enum CacheBypassReason: String, Sendable, CaseIterable {
    /// Asks for variety: above `cache.temperature_ceiling`, or `n` > 1.
    case temperature, n
    /// `Cache-Control: no-cache` / `no-store`; `x-distill-cache: refresh`.
    case noCache = "no-cache", noStore = "no-store", refresh
    /// Asks for `logprobs`, which distill does not keep: only the teacher has them.
    case logprobs
    /// The last user message is longer than the embedder's window: no semantic match, no student
    /// (an exact hit still serves).
    case beyondWindow = "beyond-window"
}

/// Why entries left the cache.
public enum CacheRemovalReason: String, Sendable, CaseIterable {
    case lru, expired, invalidated, purged
}

/// Store writes the domain makes, for `distill_store_failures_total`.
public enum StoreOperation: String, Sendable, CaseIterable {
    case teacherLog = "teacher_log", cacheEvict = "cache_evict", cacheUpkeep = "cache_upkeep"
    case studentVersions = "student_versions"
}
