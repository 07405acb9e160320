import Foundation
import Testing

@testable import Teacher

@Suite struct CircuitBreakerTests {
    let t0 = ContinuousClock.now

    @Test func opensAfterTheThresholdOfConsecutiveFailures() {
        let breaker = CircuitBreaker(failureThreshold: 3, openDuration: .seconds(10))
        breaker.recordFailure(at: t0)
        breaker.recordFailure(at: t0)
        breaker.recordSuccess()  // resets the count
        breaker.recordFailure(at: t0)
        breaker.recordFailure(at: t0)
        #expect(breaker.permit(at: t0) == nil)
        breaker.recordFailure(at: t0)
        #expect(breaker.snapshot == .init(state: .open, consecutiveFailures: 3))
        #expect(breaker.permit(at: t0 + .seconds(4)) == .seconds(6))
    }

    @Test func letsOneProbeThroughAfterTheOpenPeriod() {
        let breaker = CircuitBreaker(failureThreshold: 1, openDuration: .seconds(10))
        breaker.recordFailure(at: t0)
        #expect(breaker.permit(at: t0 + .seconds(10)) == nil)
        #expect(breaker.snapshot.state == .halfOpen)
        #expect(breaker.permit(at: t0 + .seconds(10)) != nil, "a second caller waits for the probe's verdict")
        breaker.recordSuccess()
        #expect(breaker.snapshot == .init(state: .closed, consecutiveFailures: 0))
        #expect(breaker.permit(at: t0 + .seconds(10)) == nil)
    }

    @Test func aFailedProbeOpensItAgain() {
        let breaker = CircuitBreaker(failureThreshold: 5, openDuration: .seconds(10))
        for _ in 0..<5 { breaker.recordFailure(at: t0) }
        #expect(breaker.permit(at: t0 + .seconds(11)) == nil)
        breaker.recordFailure(at: t0 + .seconds(11))
        #expect(breaker.snapshot.state == .open)
        #expect(breaker.permit(at: t0 + .seconds(12)) == .seconds(9))
    }

    @Test func anAbandonedProbeFreesTheSlot() {
        let breaker = CircuitBreaker(failureThreshold: 1, openDuration: .seconds(1))
        breaker.recordFailure(at: t0)
        #expect(breaker.permit(at: t0 + .seconds(1)) == nil)
        breaker.recordAbandoned()
        #expect(breaker.permit(at: t0 + .seconds(1)) == nil)
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
