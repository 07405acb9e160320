import Foundation
import Synchronization
import Testing

@testable import Teacher

/// A clock that moves only when a test moves it.
final class ManualClock: Sendable {
    private let instant = Mutex(ContinuousClock.now)

    var now: ContinuousClock.Instant { instant.withLock { $0 } }

    func advance(by duration: Duration) {
        instant.withLock { $0 += duration }
    }
}

@Suite struct CircuitBreakerTests {
    let clock = ManualClock()

    func breaker(threshold: Int, open: Duration) -> CircuitBreaker {
        CircuitBreaker(failureThreshold: threshold, openDuration: open, now: { [clock] in clock.now })
    }

    @Test func opensAfterTheThresholdOfConsecutiveFailures() {
        let breaker = breaker(threshold: 3, open: .seconds(10))
        breaker.recordFailure()
        breaker.recordFailure()
        breaker.recordSuccess()  // resets the count
        breaker.recordFailure()
        breaker.recordFailure()
        #expect(breaker.permit() == nil)
        breaker.recordFailure()
        #expect(breaker.snapshot == .init(state: .open, consecutiveFailures: 3))
        clock.advance(by: .seconds(4))
        #expect(breaker.permit() == .seconds(6))
    }

    @Test func letsOneProbeThroughAfterTheOpenPeriod() {
        let breaker = breaker(threshold: 1, open: .seconds(10))
        breaker.recordFailure()
        clock.advance(by: .seconds(10) - .nanoseconds(1))
        #expect(breaker.permit() == .nanoseconds(1))
        clock.advance(by: .nanoseconds(1))
        #expect(breaker.permit() == nil)
        #expect(breaker.snapshot.state == .halfOpen)
        #expect(breaker.permit() != nil, "a second caller waits for the probe's verdict")
        breaker.recordSuccess()
        #expect(breaker.snapshot == .init(state: .closed, consecutiveFailures: 0))
        #expect(breaker.permit() == nil)
    }

    @Test func aFailedProbeOpensItAgain() {
        let breaker = breaker(threshold: 5, open: .seconds(10))
        for _ in 0..<5 { breaker.recordFailure() }
        clock.advance(by: .seconds(11))
        #expect(breaker.permit() == nil)
        breaker.recordFailure()
        #expect(breaker.snapshot.state == .open)
        clock.advance(by: .seconds(1))
        #expect(breaker.permit() == .seconds(9), "the open period restarts at the probe's failure")
    }

    @Test func anAbandonedProbeFreesTheSlot() {
        let breaker = breaker(threshold: 1, open: .seconds(1))
        breaker.recordFailure()
        clock.advance(by: .seconds(1))
        #expect(breaker.permit() == nil)
        #expect(breaker.permit() != nil)
        breaker.recordAbandoned()
        #expect(breaker.permit() == nil)
    }
}

@Suite struct BackoffTests {
    @Test func growsExponentiallyWithinItsJitterBandAndStopsAtTheCap() {
        let backoff = Backoff(initial: .milliseconds(100), maximum: .milliseconds(1000))
        var generator = SystemRandomNumberGenerator()
        for (attempt, cap) in [(1, 100), (2, 200), (3, 400), (4, 800), (5, 1000), (40, 1000)] {
            for _ in 0..<50 {
                let delay = backoff.delay(afterAttempt: attempt, using: &generator)
                #expect(delay >= .milliseconds(cap / 2) && delay <= .milliseconds(cap))
            }
        }
    }

    @Test func readsRetryAfterAsSecondsOrAnHTTPDate() {
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        #expect(parseRetryAfter("2", now: now) == .seconds(2))
        #expect(parseRetryAfter(" 0.5 ", now: now) == .milliseconds(500))
        let later = now.addingTimeInterval(30)
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        #expect(parseRetryAfter(formatter.string(from: later), now: now) == .seconds(30))
        #expect(parseRetryAfter("soon", now: now) == nil)
        #expect(parseRetryAfter("-3", now: now) == nil)
    }
}
