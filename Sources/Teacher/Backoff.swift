import Foundation

/// Delays between attempts: exponential from `initial`, capped at `maximum`, with "equal jitter"
/// (half the delay fixed, half random) so that clients retrying together spread out.
struct Backoff {
    let initial: Duration
    let maximum: Duration

    /// The delay before attempt `attempt + 1`, after `attempt` failed attempts (attempt ≥ 1).
    func delay(afterAttempt attempt: Int, using generator: inout some RandomNumberGenerator) -> Duration {
        let exponent = min(attempt - 1, 30)
        let capped = min(initial * (1 << exponent), maximum)
        let half = capped / 2
        return half + half * Double.random(in: 0...1, using: &generator)
    }
}

/// Parses a `Retry-After` header: delta-seconds or an HTTP date.
func parseRetryAfter(_ value: String, now: Date = Date()) -> Duration? {
    let trimmed = value.trimmingCharacters(in: .whitespaces)
    if let seconds = Double(trimmed), seconds >= 0, seconds.isFinite {
        return .milliseconds(Int64(seconds * 1000))
    }
    // Rare: upstreams send seconds. A formatter per call keeps this free of shared state.
    let formatter = DateFormatter()
    formatter.locale = Locale(identifier: "en_US_POSIX")
    formatter.timeZone = TimeZone(identifier: "GMT")
    formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
    guard let date = formatter.date(from: trimmed) else { return nil }
    return .milliseconds(Int64(max(0, date.timeIntervalSince(now)) * 1000))
}
