import DistillAPI
import DistillCore
import Prometheus
import Synchronization
import Teacher

/// The daemon's metrics: Prometheus series for `/metrics`, and the same counts kept readable
/// for `cachectl stats`.
public final class DistillMetrics: DomainMetrics {
    public let registry: PrometheusCollectorRegistry
    private let counts = Mutex(DaemonStats(
        requestsBySource: [:], errorsByStatus: [:], teacherCallsByOutcome: [:], teacherPromptTokens: 0,
        teacherCompletionTokens: 0))
    private let cacheCounts = Mutex(CacheCounts())
    /// The series every cache hit records, made once: finding a series by its labels (the
    /// registry validates and hashes them each time) took a tenth of an exact hit's time.
    private let completionSeries: [String: (requests: Counter, duration: DurationHistogram)]
    private let lookupSeries: [CacheLookupResult: (lookups: Counter, duration: DurationHistogram)]

    /// Cache counters since start-up, by label.
    public struct CacheCounts: Sendable, Equatable {
        public var lookups: [String: Int64] = [:]
        public var bypasses: [String: Int64] = [:]
        public var evictions: [String: Int64] = [:]
    }

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        completionSeries = Dictionary(
            uniqueKeysWithValues: AnswerSource.allCases.map { source in
                let route = ("route", Routes.chatCompletions), label = ("source", source.rawValue)
                return (
                    source.rawValue,
                    (registry.counter(.httpRequests, [route, ("status", "200"), label]), registry.histogram(.httpRequestDuration, [route, label]))
                )
            })
        lookupSeries = Dictionary(
            uniqueKeysWithValues: CacheLookupResult.allCases.map { result in
                let labels = [("result", result.rawValue)]
                return (result, (registry.counter(.cacheLookups, labels), registry.histogram(.cacheLookupDuration, labels)))
            })
        registerKnownSeries()
    }

    /// One finished HTTP request. `source` is where a chat completion's answer came from.
    public func recordRequest(route: String, status: Int, source: String?, duration: Duration) {
        let source = source ?? "none"
        if route == Routes.chatCompletions, status == 200, let series = completionSeries[source] {
            series.requests.increment()
            series.duration.record(duration)
        } else {
            registry.counter(.httpRequests, [("route", route), ("status", String(status)), ("source", source)]).increment()
            registry.histogram(.httpRequestDuration, [("route", route), ("source", source)]).record(duration)
        }
        guard route == Routes.chatCompletions else { return }
        counts.withLock { stats in
            if status < 400 {
                stats.requestsBySource[source, default: 0] += 1
            } else {
                stats.errorsByStatus[String(status), default: 0] += 1
            }
        }
    }

    /// One teacher call (retries included) and how it ended.
    public func recordTeacherCall(outcome: String, duration: Duration, usage: Usage?) {
        registry.counter(.teacherCalls, [("outcome", outcome)]).increment()
        registry.histogram(.teacherCallDuration, [("outcome", outcome)]).record(duration)
        if let usage {
            registry.counter(.teacherTokens, [("kind", "prompt")]).increment(by: Int64(usage.promptTokens))
            registry.counter(.teacherTokens, [("kind", "completion")]).increment(by: Int64(usage.completionTokens))
        }
        counts.withLock { stats in
            stats.teacherCallsByOutcome[outcome, default: 0] += 1
            stats.teacherPromptTokens += Int64(usage?.promptTokens ?? 0)
            stats.teacherCompletionTokens += Int64(usage?.completionTokens ?? 0)
        }
    }

    /// A write to the store failed (e.g. a full disk).
    public func recordStoreFailure(_ operation: StoreOperation) {
        registry.counter(.storeWriteFailures, [("operation", operation.rawValue)]).increment()
    }

    /// One cache lookup: `exact_hit`, `semantic_hit` or `miss`, and how long it took.
    public func recordCacheLookup(_ lookup: CacheLookupResult, duration: Duration) {
        if let series = lookupSeries[lookup] {
            series.lookups.increment()
            series.duration.record(duration)
        }
        cacheCounts.withLock { $0.lookups[lookup.rawValue, default: 0] += 1 }
    }

    /// A request that did not read (or write) the cache, and why.
    public func recordCacheBypass(_ bypass: CacheBypassReason) {
        let reason = bypass.rawValue
        registry.counter(.cacheBypasses, [("reason", reason)]).increment()
        cacheCounts.withLock { $0.bypasses[reason, default: 0] += 1 }
    }

    public func recordCacheEvictions(_ removal: CacheRemovalReason, count: Int) {
        let reason = removal.rawValue
        registry.counter(.cacheEvictions, [("reason", reason)]).increment(by: Int64(count))
        cacheCounts.withLock { $0.evictions[reason, default: 0] += Int64(count) }
    }

    /// One semantic lookup the verified cache decided, per scope; and the wrong-hit rate its model
    /// expects of the scope's hits, with its upper bound.
    public func recordCacheVerification(
        scope: String, decision: CacheVerificationDecision, wrongHitRate: (estimate: Double, upperBound: Double)?
    ) {
        let scope = String(scope.prefix(12))
        registry.counter(.cacheVerifiedLookups, [("scope", scope), ("decision", decision.rawValue)]).increment()
        guard let wrongHitRate else { return }
        registry.gauge(.cacheWrongHitRate, [("scope", scope)]).set(to: wrongHitRate.estimate)
        registry.gauge(.cacheWrongHitRateUpperBound, [("scope", scope)]).set(to: wrongHitRate.upperBound)
    }

    /// A teacher answer compared with the cached answer of the lookup's candidate.
    public func recordCacheLesson(scope: String, wrong: Bool) {
        registry.counter(.cacheLessons, [("scope", String(scope.prefix(12))), ("result", wrong ? "different" : "same")]).increment()
    }

    /// The instruction set of the encoder's and the index's kernels ("avx512", "avx2", "portable"), set once at start-up.
    public func setKernels(_ kernelSet: String) {
        registry.gauge(.kernelsInfo, [("kernels", kernelSet)]).set(to: 1)
    }

    /// This node's place in a cluster, at each scrape.
    public func updateCluster(feedLagSeconds: Double, leader: Bool) {
        registry.gauge(.clusterFeedLag).set(to: feedLagSeconds)
        registry.gauge(.clusterLeader).set(to: leader ? 1 : 0)
    }

    public func setCacheEntries(_ count: Int) {
        registry.gauge(.cacheEntries).set(to: Double(count))
    }

    /// What a scope's student made of a cache miss: answer, audit (the teacher answers, for comparison) or unsure.
    public func recordStudentDecision(_ action: Students.Decision.Action) {
        registry.counter(.studentDecisions, [("decision", "\(action)")]).increment()
    }

    /// One audit: whether the teacher gave the student's answer, and the scope's live agreement since.
    public func recordStudentAudit(agrees: Bool, scope: String, liveAgreement: Double) {
        registry.counter(.studentAudits, [("result", agrees ? "agree" : "disagree")]).increment()
        registry.gauge(.studentLiveAgreement, [("scope", String(scope.prefix(12)))]).set(to: liveAgreement)
    }

    /// Each serving student's audit share in force and its sequential tests, set as `/metrics` is scraped.
    public func updateStudents(_ status: StudentStatus) {
        for scope in status.scopes {
            let label = [("scope", String(scope.scope.prefix(12)))]
            registry.gauge(.studentAuditShare, label).set(to: scope.auditShareInForce ?? status.auditShare)
            registry.gauge(.studentAuditTestProgress, label).set(to: scope.auditTest?.progress ?? 0)
            registry.gauge(.studentNoveltyTestProgress, label).set(to: scope.noveltyTest?.progress ?? 0)
            registry.gauge(.studentShiftSuspected, label).set(to: scope.shiftSuspected == true ? 1.0 : 0.0)
            registry.gauge(.studentShiftEvident, label).set(to: scope.shiftEvident == true ? 1.0 : 0.0)
        }
    }

    public func recordStudentSuspension() {
        registry.counter(.studentSuspensions).increment()
    }

    /// One finished re-distillation run of a scope: promoted, rejected, failed or cancelled.
    public func recordDistillRun(_ outcome: DistillRunOutcome, trainingSeconds: Double) {
        registry.counter(.distillRuns, [("outcome", outcome.rawValue)]).increment()
        registry.histogram(.trainingDuration).record(.seconds(trainingSeconds))
    }

    public func updateBreaker(_ state: CircuitBreaker.State) {
        registry.gauge(.teacherBreakerOpen).set(to: state == .open ? 1.0 : 0.0)
    }

    /// A request refused before routing (`RequestGuard`), by its error code.
    public func recordRefusal(code: String) {
        registry.counter(.httpRefusals, [("code", code)]).increment()
    }

    public var stats: DaemonStats { counts.withLock { $0 } }
    public var cacheStats: CacheCounts { cacheCounts.withLock { $0 } }
}

/// Route names as metrics label them.
public enum Routes {
    public static let chatCompletions = "/v1/chat/completions"
}
