import Crypto
import DistillAPI
import DistillCore
import Foundation
import Hummingbird
import Synchronization

/// Where a router serves the admin API.
enum AdminAccess: Sendable {
    /// Not at all (the TCP listener, unless `admin.token` is set).
    case none
    /// To anyone who can connect: the Unix socket, whose mode (0600) is the guard.
    case socket
    /// To requests that present this bearer token (the TCP listener, with `admin.token`).
    case bearer(token: String)
}

/// Requires the admin token on every admin route. Added to the router just before the admin
/// routes, so it wraps exactly those; it is keyed on the route that matched, not on the path's
/// text, so no spelling of a path (`/v1/../admin`, `/%61dmin`) gets around it.
struct AdminTokenMiddleware: RouterMiddleware {
    typealias Context = DistillRequestContext
    let digest: [UInt8]

    init(token: String) {
        digest = sha256(token)
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        // A router's middleware also wraps its not-found answer: an unknown path stays a 404.
        guard context.endpointPath != nil else { return try await next(request, context) }
        guard let token = Scope.bearerToken(request.headers[.authorization]),
            constantTimeEqual(sha256(token), digest)
        else {
            throw APIError(
                status: 401, type: "invalid_request_error", code: "invalid_admin_token",
                message: "The admin API needs 'Authorization: Bearer <admin.token>'.")
        }
        return try await next(request, context)
    }
}

/// The public API's gate: with `server.api_keys` set a request must present one of them (which
/// is then its tenant); with `server.rate_limit_per_second` set each key (or tenant) gets a token
/// bucket, and a request beyond it gets a 429 with `Retry-After`. Synchronous, so that
/// `ExactHitShortcut` asks it as `ClientAccessMiddleware` does; one per listener, shared by both.
struct ClientAccess: Sendable {
    /// SHA-256 of each key: compared in constant time, and the same length whatever the key's.
    let keyDigests: [[UInt8]]
    let limiter: RateLimiter?

    init(server: DistillConfig.Server) {
        keyDigests = server.apiKeys.map(sha256)
        limiter = server.rateLimitPerSecond > 0
            ? RateLimiter(perSecond: server.rateLimitPerSecond, burst: server.rateLimitBurst) : nil
    }

    /// The 401 for a request without one of the keys, when keys are configured; else nil.
    func refusal(authorization: String?) -> APIError? {
        guard !keyDigests.isEmpty else { return nil }
        guard let token = Scope.bearerToken(authorization) else {
            return APIError(
                status: 401, type: "invalid_request_error", code: "missing_api_key",
                message: "You didn't provide an API key: send 'Authorization: Bearer <key>'.")
        }
        let digest = sha256(token)
        // Every key is compared, so the time taken does not say which one came close.
        let known = keyDigests.reduce(false) { found, key in constantTimeEqual(digest, key) || found }
        guard known else {
            return APIError(status: 401, type: "invalid_request_error", code: "invalid_api_key", message: "Incorrect API key provided.")
        }
        return nil
    }

    /// Takes a token from the request's bucket: nil if there was one, else the 429 (and no token taken).
    func admit(authorization: String?) -> APIError? {
        guard let limiter, let wait = limiter.admit(Scope.tenant(authorization: authorization), now: .now) else { return nil }
        let seconds = max(1, Int(wait.inSeconds.rounded(.up)))
        return APIError(
            status: 429, type: "requests", code: "rate_limit_exceeded",
            message: "Rate limit reached: \(limiter.perSecond.formatted()) requests per second (bursts of \(limiter.burst)) for this API key. Try again in \(seconds) s.",
            retryAfterSeconds: seconds)
    }
}

/// `ClientAccess` in front of the public API's routes.
struct ClientAccessMiddleware: RouterMiddleware {
    typealias Context = DistillRequestContext
    let access: ClientAccess

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let authorization = request.headers[.authorization]
        if let refusal = access.refusal(authorization: authorization) { throw refusal }
        if let refusal = access.admit(authorization: authorization) { throw refusal }
        return try await next(request, context)
    }
}

/// Token buckets by key: each holds up to `burst` requests and refills at `perSecond`.
final class RateLimiter: Sendable {
    let perSecond: Double
    let burst: Int
    private let state = Mutex(State())

    private struct State {
        var buckets: [String: Bucket] = [:]
        /// Beyond this many buckets, full ones are dropped (a full bucket is the same as none).
        var pruneAt = RateLimiter.minimumPruneAt
    }

    private struct Bucket {
        var tokens: Double
        var updated: ContinuousClock.Instant
    }

    /// Keys are tenants, which clients choose when no API keys are configured: their number must
    /// not grow memory without bound.
    static let minimumPruneAt = 10_000

    init(perSecond: Double, burst: Int) {
        self.perSecond = perSecond
        self.burst = burst
    }

    /// Takes a token from `key`'s bucket: nil if there was one, else how long until there is.
    func admit(_ key: String, now: ContinuousClock.Instant) -> Duration? {
        state.withLock { state in
            var bucket = state.buckets[key] ?? Bucket(tokens: Double(burst), updated: now)
            bucket.tokens = refilled(bucket, now: now)
            bucket.updated = now
            defer {
                state.buckets[key] = bucket
                if state.buckets.count >= state.pruneAt { prune(&state, now: now) }
            }
            guard bucket.tokens >= 1 else { return .seconds((1 - bucket.tokens) / perSecond) }
            bucket.tokens -= 1
            return nil
        }
    }

    var bucketCount: Int { state.withLock { $0.buckets.count } }

    private func refilled(_ bucket: Bucket, now: ContinuousClock.Instant) -> Double {
        min(Double(burst), bucket.tokens + max(0, (now - bucket.updated).inSeconds) * perSecond)
    }

    private func prune(_ state: inout State, now: ContinuousClock.Instant) {
        state.buckets = state.buckets.filter { refilled($0.value, now: now) < Double(burst) }
        // Pruning again only after the map has doubled keeps it amortized O(1) per request.
        state.pruneAt = max(Self.minimumPruneAt, 2 * state.buckets.count)
    }
}

func sha256(_ text: String) -> [UInt8] { Array(SHA256.hash(data: Data(text.utf8))) }

/// Equal digests (of one length), in time that does not depend on where they differ.
func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    var difference = UInt8(truncatingIfNeeded: a.count ^ b.count)
    for (x, y) in zip(a, b) { difference |= x ^ y }
    return difference == 0
}

extension Duration {
    var inSeconds: Double { Double(components.seconds) + Double(components.attoseconds) * 1e-18 }
}
