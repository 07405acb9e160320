import DistillAPI
import DistillCore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing

@testable import DistillServer

/// API keys, the per-key rate limit and the admin token, through the real routers.
@Suite struct AccessTests {
    static let key1 = "sk-test-0123456789abcdef"
    static let key2 = "sk-test-fedcba9876543210"
    static let token = String(repeating: "t0k3n", count: 8)
    let routes = RoutesTests()

    func ask(_ client: some TestClientProtocol, key: String?, check: @escaping (TestResponse) throws -> Void) async throws {
        var headers: HTTPFields = [:]
        headers[.authorization] = key.map { "Bearer \($0)" }
        try await client.execute(
            uri: "/v1/chat/completions", method: .post, headers: headers, body: ByteBuffer(string: RoutesTests.question + "}"),
            testCallback: check)
    }

    @Test func withAPIKeysARequestNeedsOneAndTheKeyIsItsTenant() async throws {
        try await routes.withApp(admin: false, configure: { $0.server.apiKeys = [Self.key1, Self.key2] }) { client, _, simulator in
            try await ask(client, key: nil) { response in
                #expect(response.status == .unauthorized)
                #expect(RoutesTests.errorCode(response) == "missing_api_key")
            }
            try await ask(client, key: "sk-test-not-a-key-at-all") { response in
                #expect(response.status == .unauthorized)
                #expect(RoutesTests.errorCode(response) == "invalid_api_key")
                #expect(!String(buffer: response.body).contains("sk-test"), "the key is not echoed")
            }
            #expect(simulator.stats.requests == 0)
            try await ask(client, key: Self.key1) { #expect($0.headers[.distillSource] == "teacher") }
            try await ask(client, key: Self.key1) { #expect($0.headers[.distillSource] == "cache") }
            try await ask(client, key: Self.key2) { #expect($0.headers[.distillSource] == "teacher", "another key, another tenant") }
            try await client.execute(uri: "/v1/models", method: .get) { #expect($0.status == .unauthorized) }
            // Probes and the scraper need no key.
            for path in ["/healthz", "/readyz", "/metrics"] {
                try await client.execute(uri: path, method: .get) { #expect($0.status == .ok) }
            }
        }
    }

    @Test func aKeyBeyondItsRateGetsA429WithRetryAfterAndOtherKeysDoNot() async throws {
        // One request per 1000 s: nothing refills while the test runs.
        try await routes.withApp(admin: false, configure: { $0.server.rateLimitPerSecond = 0.001; $0.server.rateLimitBurst = 2 }) {
            client, _, _ in
            try await ask(client, key: Self.key1) { #expect($0.status == .ok) }
            try await ask(client, key: Self.key1) { #expect($0.status == .ok) }
            try await ask(client, key: Self.key1) { response in
                #expect(response.status == .tooManyRequests)
                #expect(response.headers[.retryAfter].flatMap(Int.init).map { (990...1000).contains($0) } == true)
                let error = try JSONDecoder().decode(ErrorBody.self, from: Data(buffer: response.body)).error
                #expect(error.type == "requests" && error.code == "rate_limit_exceeded")
            }
            try await ask(client, key: Self.key2) { #expect($0.status == .ok, "each key has its own bucket") }
            try await client.execute(uri: "/healthz", method: .get) { #expect($0.status == .ok) }
        }
    }

    @Test func theAdminAPIOnTCPNeedsTheTokenOnEveryAdminRouteAndOnlyThere() async throws {
        try await routes.withApp(admin: false, configure: { $0.admin.token = Self.token }) { client, _, _ in
            do {
                for (authorization, status) in [(nil, HTTPResponse.Status.unauthorized), ("Bearer wrong", .unauthorized), ("Bearer \(Self.token)", .ok)] {
                    for path in ["/admin/status", "/admin/stats", "/admin/cache/stats", "/admin/teacher-log"] {
                        var headers: HTTPFields = [:]
                        headers[.authorization] = authorization
                        try await client.execute(uri: path, method: .get, headers: headers) { response in
                            #expect(response.status == status, "\(path) with \(authorization ?? "no token")")
                        }
                    }
                }
                try await client.execute(uri: "/admin/no-such-route", method: .get) { #expect($0.status == .notFound) }
                try await ask(client, key: nil) { #expect($0.status == .ok, "the public API needs no admin token") }
            }
        }
    }

    @Test func aBucketRefillsAtItsRateUpToItsBurst() {
        let limiter = RateLimiter(perSecond: 2, burst: 3)
        let start = ContinuousClock.now
        for _ in 0..<3 { #expect(limiter.admit("k", now: start) == nil) }
        #expect(limiter.admit("k", now: start) == .milliseconds(500))
        #expect(limiter.admit("k", now: start + .milliseconds(250)) == .milliseconds(250))
        #expect(limiter.admit("k", now: start + .milliseconds(500)) == nil)
        #expect(limiter.admit("other", now: start + .milliseconds(500)) == nil)
        // After a long pause the bucket holds its burst, no more.
        for _ in 0..<3 { #expect(limiter.admit("k", now: start + .seconds(100)) == nil) }
        #expect(limiter.admit("k", now: start + .seconds(100)) != nil)
    }

    @Test func bucketsOfIdleTenantsAreDroppedSoClientChosenKeysCannotGrowMemory() {
        let limiter = RateLimiter(perSecond: 1, burst: 5)
        let start = ContinuousClock.now
        for i in 0..<(3 * RateLimiter.minimumPruneAt) {
            // Each key is used once; a second later its bucket is full again, as good as new.
            _ = limiter.admit("tenant-\(i)", now: start + .seconds(i / 1000))
        }
        #expect(limiter.bucketCount < 2 * RateLimiter.minimumPruneAt)
    }

    @Test func digestsCompareEqualOnlyWhenEqual() {
        #expect(constantTimeEqual(sha256("a"), sha256("a")))
        #expect(!constantTimeEqual(sha256("a"), sha256("b")))
        #expect(!constantTimeEqual([1, 2], [1, 2, 3]))
    }
}
