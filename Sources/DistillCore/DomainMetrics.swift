import DistillAPI

/// What the domain reports as it works; the application turns it into metrics (Prometheus series
/// and the counts `cachectl stats` shows).
public protocol DomainMetrics: Sendable {
    func recordCacheLookup(_ result: CacheLookupResult, duration: Duration)
    func recordCacheBypass(_ reason: CacheBypassReason)
    func recordCacheEvictions(_ reason: CacheRemovalReason, count: Int)
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
}

public enum CacheBypassReason: String, Sendable, CaseIterable {
    /// Asks for variety: above `cache.temperature_ceiling`, or `n` > 1.
    case temperature, n
    /// `Cache-Control: no-cache` / `no-store`; `x-distill-cache: refresh`.
    case noCache = "no-cache", noStore = "no-store", refresh
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
