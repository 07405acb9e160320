import DistillAPI
import DistillClient
import Foundation
import Testing

/// API keys, the rate limit and the admin token on a real distilld, configured through its
/// environment as an operator would.
@Suite(.timeLimit(.minutes(2)))
struct AccessEndToEndTests {
    static let keys = ["sk-e2e-first-0123456789", "sk-e2e-second-9876543210"]
    static let adminToken = "admin-e2e-" + String(repeating: "0123456789", count: 3)

    @Test func keysRateLimitAndTheAdminTokenAndNoneOfThemInTheLogs() async throws {
        let world = try await EndToEnd.World.start(environment: [
            "DISTILL_SERVER_API_KEYS": Self.keys.joined(separator: ","), "DISTILL_ADMIN_TOKEN": Self.adminToken,
            // Three requests per key, then one every 1000 s: nothing refills while the test runs.
            "DISTILL_SERVER_RATE_LIMIT_PER_SECOND": "0.001", "DISTILL_SERVER_RATE_LIMIT_BURST": "3",
        ])
        do {
            let (query, answer) = EndToEnd.sample
            func ask(_ key: String?) async throws -> ChatReply {
                try await world.client(key: key).complete(EndToEnd.request(query))
            }
            func refusal(_ key: String?) async -> APIError? {
                await #expect(throws: DistillClientError.self) { try await ask(key) }?.apiError
            }
            #expect(await refusal(nil)?.code == "missing_api_key")
            #expect(await refusal("sk-e2e-guessed-000000000")?.code == "invalid_api_key")
            #expect(try await ask(Self.keys[0]).answer == answer)
            #expect(try await ask(Self.keys[0]).info.source == .cache)
            #expect(try await ask(Self.keys[1]).info.source == .teacher, "each key is a tenant of its own")
            _ = try await ask(Self.keys[0])
            let limited = await refusal(Self.keys[0])
            #expect(limited?.status == 429 && limited?.code == "rate_limit_exceeded")
            #expect(limited?.retryAfterSeconds.map { $0 > 900 } == true)
            _ = try await ask(Self.keys[1])  // the other key has its own bucket

            // The admin API on TCP, behind the token; however the path is spelt.
            for path in ["/admin/status", "/%61dmin/status", "/admin/cache/stats"] {
                let anonymous = try await RawHTTP.request(.init(world.http), "GET \(path) HTTP/1.1\r\nHost: x\r\n")
                #expect(anonymous.status == 401 || anonymous.status == 404, "\(path) without the token: \(anonymous.answer.prefix(200))")
                #expect(!anonymous.body.contains("uptime"))
            }
            let wrong = await #expect(throws: DistillClientError.self) {
                try await DistillClient(.tcp(world.http), adminToken: Self.keys[0]).status()
            }?.apiError
            #expect(wrong?.status == 401 && wrong?.code == "invalid_admin_token", "an API key is not the admin token")
            #expect(try await DistillClient(.tcp(world.http), adminToken: Self.adminToken).status().uptimeSeconds >= 0)
            // The socket needs no token: its mode is the guard.
            #expect(try await world.cachectl(["status"]).status == 0)
            // cachectl over TCP takes the token from the environment.
            func cachectlOverTCP(token: String) async throws -> (status: Int32, stdout: String, stderr: String) {
                try await runToCompletion(
                    "cachectl", ["--url", world.http, "cache", "stats", "--json"], environment: ["DISTILL_ADMIN_TOKEN": token],
                    in: world.directory)
            }
            let stats = try await cachectlOverTCP(token: Self.adminToken)
            #expect(stats.status == 0 && stats.stdout.contains("\"entries\""))
            #expect(try await cachectlOverTCP(token: Self.keys[0]).status == 1, "a wrong token is refused")
            let anonymous = try await runToCompletion("cachectl", ["--url", world.http, "status"], in: world.directory)
            #expect(anonymous.status == 1 && anonymous.stderr.contains("(set $DISTILL_ADMIN_TOKEN"), "\(anonymous.stderr)")

            world.daemon.signal(SIGTERM)
            #expect(await world.daemon.exitStatus() == 0)
            let logs = world.daemon.stderr
            #expect(logs.contains("listening on"), "the daemon logged at info level")
            for secret in Self.keys + [Self.adminToken, "sk-e2e-guessed", query] {
                #expect(!logs.contains(secret), "\(secret) is in the daemon's log")
            }
        } catch {
            Issue.record("distilld stderr:\n\(world.daemon.stderr.suffix(4000))")
            await world.stop()
            throw error
        }
        await world.stop()
    }
}
