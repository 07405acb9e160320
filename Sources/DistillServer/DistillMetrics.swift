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

    /// Cache counters since start-up, by label.
    public struct CacheCounts: Sendable, Equatable {
        public var lookups: [String: Int64] = [:]
        public var bypasses: [String: Int64] = [:]
        public var evictions: [String: Int64] = [:]
    }

    private static let latencyBuckets: [Duration] = [
        .microseconds(500), .milliseconds(1), .milliseconds(2.5), .milliseconds(5), .milliseconds(10),
        .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500),
        .seconds(1), .seconds(2.5), .seconds(5), .seconds(10), .seconds(30), .seconds(60),
    ]

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
    }

    /// One finished HTTP request. `source` is where a chat completion's answer came from.
    public func recordRequest(route: String, status: Int, source: String?, duration: Duration) {
        let source = source ?? "none"
        registry.makeCounter(
            name: "distill_http_requests_total",
            labels: [("route", route), ("status", String(status)), ("source", source)],
            help: "HTTP requests by route, status and answer source."
        ).increment()
        registry.makeDurationHistogram(
            name: "distill_http_request_duration_seconds", labels: [("route", route), ("source", source)],
            buckets: Self.latencyBuckets, help: "HTTP request latency by route and answer source."
        ).record(duration)
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
        registry.makeCounter(
            name: "distill_teacher_calls_total", labels: [("outcome", outcome)], help: "Teacher calls by outcome."
        ).increment()
        registry.makeDurationHistogram(
            name: "distill_teacher_call_duration_seconds", labels: [("outcome", outcome)],
            buckets: Self.latencyBuckets, help: "Teacher call latency, retries included."
        ).record(duration)
        if let usage {
            let tokens = "distill_teacher_tokens_total"
            let help = "Tokens the teacher was billed for, by kind."
            registry.makeCounter(name: tokens, labels: [("kind", "prompt")], help: help)
                .increment(by: Int64(usage.promptTokens))
            registry.makeCounter(name: tokens, labels: [("kind", "completion")], help: help)
                .increment(by: Int64(usage.completionTokens))
        }
        counts.withLock { stats in
            stats.teacherCallsByOutcome[outcome, default: 0] += 1
            stats.teacherPromptTokens += Int64(usage?.promptTokens ?? 0)
            stats.teacherCompletionTokens += Int64(usage?.completionTokens ?? 0)
        }
    }

    /// A write to the store failed (e.g. a full disk).
    public func recordStoreFailure(_ operation: StoreOperation) {
        registry.makeCounter(
            name: "distill_store_write_failures_total", labels: [("operation", operation.rawValue)],
            help: "Failed writes to the SQLite store."
        ).increment()
    }

    /// One cache lookup: `exact_hit`, `semantic_hit` or `miss`, and how long it took.
    public func recordCacheLookup(_ lookup: CacheLookupResult, duration: Duration) {
        let result = lookup.rawValue
        registry.makeCounter(
            name: "distill_cache_lookups_total", labels: [("result", result)], help: "Cache lookups by result."
        ).increment()
        registry.makeDurationHistogram(
            name: "distill_cache_lookup_duration_seconds", labels: [("result", result)], buckets: Self.latencyBuckets,
            help: "Cache lookup latency (embedding included for semantic lookups)."
        ).record(duration)
        cacheCounts.withLock { $0.lookups[result, default: 0] += 1 }
    }

    /// A request that did not read (or write) the cache, and why.
    public func recordCacheBypass(_ bypass: CacheBypassReason) {
        let reason = bypass.rawValue
        registry.makeCounter(
            name: "distill_cache_bypasses_total", labels: [("reason", reason)], help: "Requests that bypassed the cache, by reason."
        ).increment()
        cacheCounts.withLock { $0.bypasses[reason, default: 0] += 1 }
    }

    public func recordCacheEvictions(_ removal: CacheRemovalReason, count: Int) {
        let reason = removal.rawValue
        registry.makeCounter(
            name: "distill_cache_evictions_total", labels: [("reason", reason)],
            help: "Cache entries removed, by reason (lru, expired, invalidated, purged)."
        ).increment(by: Int64(count))
        cacheCounts.withLock { $0.evictions[reason, default: 0] += Int64(count) }
    }

    public func setCacheEntries(_ count: Int) {
        registry.makeGauge(name: "distill_cache_entries", help: "Entries in the semantic cache.").set(to: Double(count))
    }

    /// What a scope's student made of a cache miss: answer, audit (the teacher answers, for comparison) or unsure.
    public func recordStudentDecision(_ action: Students.Decision.Action) {
        registry.makeCounter(
            name: "distill_student_decisions_total", labels: [("decision", "\(action)")],
            help: "Cache misses a student looked at, by decision: answer (served by the student), audit, unsure (below τ), novel (confident but unlike what it learned)."
        ).increment()
    }

    /// One audit: whether the teacher gave the student's answer, and the scope's live agreement since.
    public func recordStudentAudit(agrees: Bool, scope: String, liveAgreement: Double) {
        registry.makeCounter(
            name: "distill_student_audits_total", labels: [("result", agrees ? "agree" : "disagree")],
            help: "Confident student answers checked against the teacher, by result."
        ).increment()
        registry.makeGauge(
            name: "distill_student_live_agreement", labels: [("scope", String(scope.prefix(12)))],
            help: "Share of a scope's recent audits where the teacher gave the student's answer."
        ).set(to: liveAgreement)
    }

    /// Each serving student's audit share in force and its sequential tests, set as `/metrics` is scraped.
    public func updateStudents(_ status: StudentStatus) {
        for scope in status.scopes {
            let label = [("scope", String(scope.scope.prefix(12)))]
            registry.makeGauge(
                name: "distill_student_audit_share", labels: label,
                help: "Share of a scope student's answers also asked of the teacher, as in force now."
            ).set(to: scope.auditShareInForce ?? status.auditShare)
            registry.makeGauge(
                name: "distill_student_audit_test_progress", labels: label,
                help: "The audits' sequential test: its statistic as a share of the way to suspending the student (1: suspended)."
            ).set(to: scope.auditTest?.progress ?? 0)
            registry.makeGauge(
                name: "distill_student_novelty_test_progress", labels: label,
                help: "The shift rule's test over confident requests: its statistic as a share of the way to its alarm."
            ).set(to: scope.noveltyTest?.progress ?? 0)
            registry.makeGauge(
                name: "distill_student_shift_suspected", labels: label,
                help: "1 while a shift of the scope's traffic away from what its student learned is suspected."
            ).set(to: scope.shiftSuspected == true ? 1.0 : 0.0)
        }
    }

    public func recordStudentSuspension() {
        registry.makeCounter(
            name: "distill_student_suspensions_total",
            help: "Students taken out of service because their audited answers fell below the target agreement."
        ).increment()
    }

    /// One finished re-distillation run of a scope: promoted, rejected, failed or cancelled.
    public func recordDistillRun(_ outcome: DistillRunOutcome, trainingSeconds: Double) {
        registry.makeCounter(
            name: "distill_distill_runs_total", labels: [("outcome", outcome.rawValue)], help: "Student training runs by outcome."
        ).increment()
        registry.makeDurationHistogram(
            name: "distill_training_duration_seconds",
            buckets: [.seconds(1), .seconds(2.5), .seconds(5), .seconds(10), .seconds(30), .seconds(60), .seconds(120), .seconds(300), .seconds(600), .seconds(1800)],
            help: "Time spent training a student (loading and embedding included)."
        ).record(.seconds(trainingSeconds))
    }

    public func updateBreaker(_ state: CircuitBreaker.State) {
        let gauge = registry.makeGauge(
            name: "distill_teacher_breaker_open", help: "1 while the teacher's circuit breaker refuses calls.")
        gauge.set(to: state == .open ? 1.0 : 0.0)
    }

    public var stats: DaemonStats { counts.withLock { $0 } }
    public var cacheStats: CacheCounts { cacheCounts.withLock { $0 } }
}

/// Route names as metrics label them.
public enum Routes {
    public static let chatCompletions = "/v1/chat/completions"
}
