import Synchronization

/// Stops calling an upstream that keeps failing, so clients get a fast 503 instead of waiting on
/// timeouts: after `failureThreshold` consecutive failures the breaker opens and refuses calls for
/// `openDuration`; then one probe goes through (half-open): its success closes the breaker, its
/// failure opens it again.
///
/// A call is whatever its user guards with one `permit()` and one verdict: for the teacher, one
/// request with all of its retries.
public final class CircuitBreaker: Sendable {
    public enum State: String, Sendable {
        case closed
        case open
        case halfOpen = "half_open"
    }

    public struct Snapshot: Sendable, Equatable {
        public var state: State
        public var consecutiveFailures: Int
    }

    private struct Machine {
        var state: State = .closed
        var consecutiveFailures = 0
        var openedAt: ContinuousClock.Instant?
        var probeInFlight = false
    }

    public let failureThreshold: Int
    public let openDuration: Duration
    /// The current instant; tests pass a clock they move by hand.
    private let now: @Sendable () -> ContinuousClock.Instant
    private let machine = Mutex(Machine())

    public init(
        failureThreshold: Int, openDuration: Duration,
        now: @escaping @Sendable () -> ContinuousClock.Instant = { ContinuousClock.now }
    ) {
        precondition(failureThreshold >= 1, "a breaker needs a failure threshold of at least 1")
        self.failureThreshold = failureThreshold
        self.openDuration = openDuration
        self.now = now
    }

    /// Asks to make a call. Returns nil if allowed, else how long until a probe may go.
    /// An allowed call must end in exactly one of `recordSuccess`, `recordFailure`, `recordAbandoned`.
    public func permit() -> Duration? {
        let now = now()
        return machine.withLock { m in
            switch m.state {
            case .closed:
                return nil
            case .open:
                let reopen = m.openedAt! + openDuration
                guard now >= reopen else { return reopen - now }
                m.state = .halfOpen
                m.probeInFlight = true
                return nil
            case .halfOpen:
                // One probe at a time; everyone else waits for its verdict.
                guard !m.probeInFlight else { return openDuration }
                m.probeInFlight = true
                return nil
            }
        }
    }

    public func recordSuccess() {
        machine.withLock { m in
            m = Machine()
        }
    }

    public func recordFailure() {
        let now = now()
        machine.withLock { m in
            m.consecutiveFailures += 1
            m.probeInFlight = false
            if m.state == .halfOpen || m.consecutiveFailures >= failureThreshold {
                m.state = .open
                m.openedAt = now
            }
        }
    }

    /// A call that ended neither way (e.g. cancelled): frees the probe slot without a verdict.
    public func recordAbandoned() {
        machine.withLock { m in m.probeInFlight = false }
    }

    public var snapshot: Snapshot {
        machine.withLock { m in Snapshot(state: m.state, consecutiveFailures: m.consecutiveFailures) }
    }
}
