import DistillAPI
import Prometheus
import Synchronization
import Teacher

/// The daemon's metrics: Prometheus series for `/metrics`, and the same counts kept readable
/// for `cachectl stats`.
public final class DistillMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    private let counts = Mutex(DaemonStats(
        requestsBySource: [:], errorsByStatus: [:], teacherCallsByOutcome: [:], teacherPromptTokens: 0,
        teacherCompletionTokens: 0))

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
    public func recordStoreFailure(operation: String) {
        registry.makeCounter(
            name: "distill_store_write_failures_total", labels: [("operation", operation)],
            help: "Failed writes to the SQLite store."
        ).increment()
    }

    public func updateBreaker(_ state: CircuitBreaker.State) {
        let gauge = registry.makeGauge(
            name: "distill_teacher_breaker_open", help: "1 while the teacher's circuit breaker refuses calls.")
        gauge.set(to: state == .open ? 1.0 : 0.0)
    }

    public var stats: DaemonStats { counts.withLock { $0 } }
}

/// Route names as metrics label them.
public enum Routes {
    public static let chatCompletions = "/v1/chat/completions"
}
