import DistillAPI
import DistillCore
import Prometheus
import Teacher

/// A metric family: its name and help (and a histogram's buckets), written once for the series
/// that record it and for the series registered at start-up.
struct MetricFamily: Sendable {
    let name: String
    let help: String
    var buckets: [Duration] = latencyBuckets

    static let latencyBuckets: [Duration] = [
        .microseconds(500), .milliseconds(1), .milliseconds(2.5), .milliseconds(5), .milliseconds(10),
        .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500),
        .seconds(1), .seconds(2.5), .seconds(5), .seconds(10), .seconds(30), .seconds(60),
    ]

    static let httpRequests = Self(name: "distill_http_requests_total", help: "HTTP requests by route, status and answer source.")
    static let httpRequestDuration = Self(
        name: "distill_http_request_duration_seconds", help: "HTTP request latency by route and answer source.")
    static let httpRefusals = Self(
        name: "distill_http_refusals_total",
        help: "Requests refused before routing: request_timeout, request_header_fields_too_large, invalid_http.")
    static let teacherCalls = Self(name: "distill_teacher_calls_total", help: "Teacher calls by outcome.")
    static let teacherCallDuration = Self(name: "distill_teacher_call_duration_seconds", help: "Teacher call latency, retries included.")
    static let teacherTokens = Self(name: "distill_teacher_tokens_total", help: "Tokens the teacher was billed for, by kind.")
    static let teacherBreakerOpen = Self(name: "distill_teacher_breaker_open", help: "1 while the teacher's circuit breaker refuses calls.")
    static let storeWriteFailures = Self(name: "distill_store_write_failures_total", help: "Failed writes to the store (SQLite or PostgreSQL).")
    static let cacheLookups = Self(name: "distill_cache_lookups_total", help: "Cache lookups by result.")
    static let cacheLookupDuration = Self(
        name: "distill_cache_lookup_duration_seconds", help: "Cache lookup latency (embedding included for semantic lookups).")
    static let cacheBypasses = Self(name: "distill_cache_bypasses_total", help: "Requests that bypassed the cache, by reason.")
    static let cacheEvictions = Self(
        name: "distill_cache_evictions_total", help: "Cache entries removed, by reason (lru, expired, invalidated, purged).")
    static let cacheEntries = Self(name: "distill_cache_entries", help: "Entries in the semantic cache.")
    static let cacheVerifiedLookups = Self(
        name: "distill_cache_verified_lookups_total",
        help: "Semantic lookups by scope and the verifier's decision: serve, explore (teacher, to learn), audit, miss.")
    static let cacheLessons = Self(
        name: "distill_cache_lessons_total", help: "Teacher answers compared with a candidate's cached answer, by scope and result.")
    static let cacheWrongHitRate = Self(
        name: "distill_cache_wrong_hit_rate", help: "The share of a scope's semantic hits the verifier expects were wrong (NaN before a hit).")
    static let cacheWrongHitRateUpperBound = Self(
        name: "distill_cache_wrong_hit_rate_upper_bound",
        help: "Its upper confidence bound: the cache serves so that it stays within cache.max_error.")
    static let studentDecisions = Self(
        name: "distill_student_decisions_total",
        help: "Cache misses a student looked at, by decision: answer (served by the student), audit, unsure (below τ), novel (confident but unlike what it learned).")
    static let studentAudits = Self(
        name: "distill_student_audits_total", help: "Confident student answers checked against the teacher, by result.")
    static let studentLiveAgreement = Self(
        name: "distill_student_live_agreement",
        help: "Share of a scope's recent audits where the teacher gave the student's answer (NaN before its first audit).")
    static let studentAuditShare = Self(
        name: "distill_student_audit_share", help: "Share of a scope student's answers also asked of the teacher, as in force now.")
    static let studentAuditTestProgress = Self(
        name: "distill_student_audit_test_progress",
        help: "The audits' sequential test: its statistic as a share of the way to suspending the student (1: suspended).")
    static let studentNoveltyTestProgress = Self(
        name: "distill_student_novelty_test_progress",
        help: "The shift rule's test over confident requests: its statistic as a share of the way to its alarm.")
    static let studentShiftSuspected = Self(
        name: "distill_student_shift_suspected",
        help: "1 while a shift of the scope's traffic away from what its student learned is suspected.")
    static let studentShiftEvident = Self(
        name: "distill_student_shift_evident",
        help: "1 while that shift is evident: the student answers nothing until a new version serves.")
    static let studentSuspensions = Self(
        name: "distill_student_suspensions_total",
        help: "Students taken out of service because their audited answers fell below the target agreement.")
    static let distillRuns = Self(name: "distill_distill_runs_total", help: "Student training runs by outcome.")
    static let trainingDuration = Self(
        name: "distill_training_duration_seconds", help: "Time spent training a student (loading and embedding included).",
        buckets: [.seconds(1), .seconds(2.5), .seconds(5), .seconds(10), .seconds(30), .seconds(60), .seconds(120), .seconds(300), .seconds(600), .seconds(1800)])
    static let kernelsInfo = Self(
        name: "distill_kernels_info", help: "1 for the kernel set this process runs, chosen from the CPU's features (or DISTILL_KERNELS).")
    static let clusterFeedLag = Self(
        name: "distill_cluster_feed_lag_seconds",
        help: "How long this node's memory may have trailed the shared store's change feed (0 when caught up, and alone).")
    static let clusterLeader = Self(
        name: "distill_cluster_leader", help: "1 while this node runs the background work done once for all nodes (a node alone always does).")
    static let buildInfo = Self(name: "distill_build_info", help: "Always 1; the version of the running distilld is its label.")

    static let residentMemory = Self(name: "process_resident_memory_bytes", help: "Resident memory size in bytes.")
    static let virtualMemory = Self(name: "process_virtual_memory_bytes", help: "Virtual memory size in bytes.")
    static let openFDs = Self(name: "process_open_fds", help: "Number of open file descriptors.")
    static let maxFDs = Self(name: "process_max_fds", help: "Maximum number of open file descriptors.")
    static let startTime = Self(name: "process_start_time_seconds", help: "Start time of the process since the Unix epoch in seconds.")
}

extension PrometheusCollectorRegistry {
    func counter(_ family: MetricFamily, _ labels: [(String, String)] = []) -> Counter {
        makeCounter(descriptor: family.descriptor, labels: labels)
    }

    func gauge(_ family: MetricFamily, _ labels: [(String, String)] = []) -> Gauge {
        makeGauge(descriptor: family.descriptor, labels: labels)
    }

    func histogram(_ family: MetricFamily, _ labels: [(String, String)] = []) -> DurationHistogram {
        makeDurationHistogram(descriptor: family.descriptor, labels: labels, buckets: family.buckets)
    }
}

extension MetricFamily {
    /// Our names end in their unit already (`_seconds`, `_total`), so the descriptor's unit is empty: it joins only
    /// the components that are not.
    var descriptor: MetricNameDescriptor { MetricNameDescriptor(metricName: name, unitName: "", helpText: help) }
}

extension DistillMetrics {
    /// Every series whose labels are known in advance exists from start-up, at zero: an alert on
    /// `increase(…) > 0` fires on the first event, and a rate is 0 rather than absent.
    func registerKnownSeries() {
        // The chat completions' series (by answer source, status 200) and the cache lookups' are made by `init`.
        for code in RequestGuard.refusalCodes { _ = registry.counter(.httpRefusals, [("code", code)]) }
        for outcome in ["success"] + TeacherError.outcomes {
            _ = registry.counter(.teacherCalls, [("outcome", outcome)])
            _ = registry.histogram(.teacherCallDuration, [("outcome", outcome)])
        }
        for kind in ["prompt", "completion"] { _ = registry.counter(.teacherTokens, [("kind", kind)]) }
        updateBreaker(.closed)
        for operation in StoreOperation.allCases { _ = registry.counter(.storeWriteFailures, [("operation", operation.rawValue)]) }
        for reason in CacheBypassReason.allCases { _ = registry.counter(.cacheBypasses, [("reason", reason.rawValue)]) }
        for reason in CacheRemovalReason.allCases { _ = registry.counter(.cacheEvictions, [("reason", reason.rawValue)]) }
        setCacheEntries(0)
        for action in Students.Decision.Action.allCases { _ = registry.counter(.studentDecisions, [("decision", "\(action)")]) }
        for result in ["agree", "disagree"] { _ = registry.counter(.studentAudits, [("result", result)]) }
        _ = registry.counter(.studentSuspensions)
        for outcome in DistillRunOutcome.allCases { _ = registry.counter(.distillRuns, [("outcome", outcome.rawValue)]) }
        _ = registry.histogram(.trainingDuration)
        registry.gauge(.buildInfo, [("version", DistillVersion.current)]).set(to: 1)
        updateCluster(feedLagSeconds: 0, leader: false)
        updateProcess()
    }

    /// The live agreement of each scope with a student, NaN until its first audit: the series
    /// exists, and no `< target` alert fires on an agreement nobody measured yet.
    public func registerStudents(_ status: StudentStatus) {
        for scope in status.scopes {
            registry.gauge(.studentLiveAgreement, [("scope", String(scope.scope.prefix(12)))]).set(to: scope.liveAgreement ?? .nan)
        }
    }

    /// The verified cache's series of each scope it has learned about, at their stored values' start:
    /// counters at 0, the wrong-hit rates as estimated (NaN before a hit).
    public func registerVerifiedScopes(_ scopes: [(scope: String, verification: ScopeVerification)]) {
        for (scope, verification) in scopes {
            let label = ("scope", String(scope.prefix(12)))
            for decision in CacheVerificationDecision.allCases {
                _ = registry.counter(.cacheVerifiedLookups, [label, ("decision", decision.rawValue)])
            }
            for result in ["same", "different"] { _ = registry.counter(.cacheLessons, [label, ("result", result)]) }
            registry.gauge(.cacheWrongHitRate, [label]).set(to: verification.estimatedWrongRate ?? .nan)
            registry.gauge(.cacheWrongHitRateUpperBound, [label]).set(to: verification.wrongRateUpperBound ?? .nan)
        }
    }

    /// The process's memory, descriptors and start time, as `/metrics` is scraped.
    public func updateProcess() {
        guard let sample = ProcessSample.current() else { return }
        registry.gauge(.residentMemory).set(to: sample.residentBytes)
        registry.gauge(.virtualMemory).set(to: sample.virtualBytes)
        registry.gauge(.openFDs).set(to: sample.openDescriptors)
        registry.gauge(.maxFDs).set(to: sample.maxDescriptors)
        if let start = ProcessSample.startTime { registry.gauge(.startTime).set(to: start) }
    }
}
