import AsyncHTTPClient
import DistillAPI
import DistillClient
import Foundation
import NIOCore
import NIOHTTP1
import Testing

/// `ExactHitShortcut` in a real distilld: a held exact hit on a kept-alive connection is answered
/// on the event loop, and must be the routes' answer in every respect a client can see; every
/// request it does not answer must get what it got before.
@Suite(.timeLimit(.minutes(2)))
struct ExactHitShortcutEndToEndTests {
    static let question = "I am still waiting on my card?"

    struct Answer {
        var status: Int
        var headers: HTTPHeaders
        var body: String
        var json: JSONValue? { try? JSONValue.parse(Data(body.utf8)) }
    }

    /// A chat completion request over a pooled (kept-alive) AsyncHTTPClient connection.
    static func post(
        _ world: EndToEnd.World, body: String, key: String? = "key-a", headers: [(String, String)] = []
    ) async throws -> Answer {
        var request = HTTPClientRequest(url: "\(world.http)/v1/chat/completions")
        request.method = .POST
        request.headers.add(name: "content-type", value: "application/json")
        if let key { request.headers.add(name: "authorization", value: "Bearer \(key)") }
        request.headers.add(contentsOf: headers)
        request.body = .bytes(ByteBuffer(string: body))
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        let text = String(buffer: try await response.body.collect(upTo: 1 << 20))
        return Answer(status: Int(response.status.code), headers: response.headers, body: text)
    }

    static func chat(_ text: String, _ extra: String = "") -> String {
        #"{"model":"gpt-test","messages":[{"role":"user","content":"\#(text)"}]\#(extra)}"#
    }

    @Test func aHeldHitIsTheRoutesHitAndEverythingElseIsAnsweredAsBefore() async throws {
        let world = try await EndToEnd.World.start()
        do {
            let first = try await Self.post(world, body: Self.chat(Self.question))
            #expect(first.status == 200 && first.headers["x-distill-source"] == ["teacher"])

            // The same request id, so that the bodies differ at most in `created`.
            let shortcut = try await Self.post(world, body: Self.chat(Self.question), headers: [("x-request-id", "same-id")])
            let routes = try await Self.post(
                world, body: Self.chat(Self.question), headers: [("x-request-id", "same-id"), ("connection", "close")])
            for answer in [shortcut, routes] {
                #expect(answer.status == 200)
                #expect(answer.headers["x-distill-source"] == ["cache"] && answer.headers["x-distill-similarity"] == ["1.0000"])
                #expect(answer.headers["x-request-id"] == ["same-id"])
                #expect(answer.headers["server"] == ["distilld"] && answer.headers["date"].count == 1)
                #expect(answer.headers["content-length"] == ["\(answer.body.utf8.count)"])
            }
            #expect(shortcut.headers.map(\.name) == routes.headers.map(\.name), "the same header fields, in the same order")
            #expect(shortcut.headers["content-type"] == routes.headers["content-type"])
            var (shortcutBody, routesBody) = (shortcut.json, routes.json)
            #expect(shortcutBody?["id"]?.stringValue == "chatcmpl-same-id")
            if case .object(var a)? = shortcutBody, case .object(var b)? = routesBody {
                a["created"] = nil
                b["created"] = nil
                (shortcutBody, routesBody) = (.object(a), .object(b))
            }
            #expect(shortcutBody == routesBody)
            func content(_ body: JSONValue?) -> String? { body?["choices"]?.arrayValue?.first?["message"]?["content"]?.stringValue }
            #expect(content(shortcutBody) != nil && content(shortcutBody) == content(first.json))

            // Over the Unix socket too.
            let overSocket = try await DistillClient(.unix(world.socket), apiKey: "key-a").complete(EndToEnd.request(Self.question))
            #expect(overSocket.info.source == .cache && overSocket.info.similarity == 1)

            // What the shortcut forwards gets the routes' answers.
            let invalid = try await Self.post(world, body: #"{"model":"gpt-test","messages":["#)
            #expect(invalid.status == 400 && invalid.headers["x-distill-source"] == ["none"])
            let streamed = try await Self.post(world, body: Self.chat(Self.question, #","stream":true"#))
            #expect(streamed.status == 200 && streamed.headers["content-type"] == ["text/event-stream"])
            #expect(streamed.headers["x-distill-source"] == ["cache"] && streamed.body.hasSuffix("data: [DONE]\n\n"))
            // Beyond the shortcut's 16 KiB, within server.max_body_bytes: the same scope, a routes' hit.
            let padded = try await Self.post(world, body: Self.chat(Self.question, #","user":"\#(String(repeating: "x", count: 20_000))""#))
            #expect(padded.status == 200 && padded.headers["x-distill-source"] == ["cache"])
            let huge = try await Self.post(world, body: Self.chat(Self.question, #","user":"\#(String(repeating: "x", count: 2 << 20))""#))
            #expect(huge.status == 413)
            let bypass = try await Self.post(world, body: Self.chat(Self.question), headers: [("cache-control", "no-store")])
            #expect(bypass.headers["x-distill-source"] == ["cache"], "no-store may read")

            // Every hit counted once, whichever path answered it: shortcut, routes (close), socket,
            // stream, padded, no-store.
            let metrics = try await world.client().metrics()
            #expect(metrics.contains(#"distill_http_requests_total{route="/v1/chat/completions",status="200",source="cache"} 6"#), "\(metrics)")
            #expect(metrics.contains(#"distill_cache_lookups_total{result="exact_hit"} 6"#))
            #expect(metrics.contains(#"distill_cache_bypasses_total{reason="no-store"} 1"#))
            let stats = try JSONDecoder.admin.decode(
                CacheStats.self, from: Data(try await world.cachectl(["cache", "stats", "--json"]).stdout.utf8))
            #expect(stats.lookups["exact_hit"] == 6 && stats.bypasses == ["no-store": 1])
        } catch {
            Issue.record("distilld stderr:\n\(world.daemon.stderr.suffix(4000))")
            await world.stop()
            throw error
        }
        await world.stop()
    }

    @Test func keysAndTheRateLimitHoldForHeldHits() async throws {
        let world = try await EndToEnd.World.start(environment: [
            "DISTILL_SERVER_API_KEYS": "sk-shortcut-0123456789",
            // Four requests, then one every 1000 s: nothing refills while the test runs.
            "DISTILL_SERVER_RATE_LIMIT_PER_SECOND": "0.001", "DISTILL_SERVER_RATE_LIMIT_BURST": "4",
        ])
        do {
            let key = "sk-shortcut-0123456789"
            #expect(try await Self.post(world, body: Self.chat(Self.question), key: key).headers["x-distill-source"] == ["teacher"])
            let missing = try await Self.post(world, body: Self.chat(Self.question), key: nil)
            #expect(missing.status == 401 && missing.json?["error"]?["code"]?.stringValue == "missing_api_key")
            let wrong = try await Self.post(world, body: Self.chat(Self.question), key: "sk-shortcut-guessed-000")
            #expect(wrong.status == 401 && wrong.json?["error"]?["code"]?.stringValue == "invalid_api_key")
            #expect(!wrong.body.contains("chatcmpl"))
            // One token each: a request that took two would leave the fourth without one.
            for _ in 1...3 {
                #expect(try await Self.post(world, body: Self.chat(Self.question), key: key).headers["x-distill-source"] == ["cache"])
            }
            let limited = try await Self.post(world, body: Self.chat(Self.question), key: key)
            #expect(limited.status == 429 && limited.headers["retry-after"].first.flatMap { Int($0) }.map { $0 > 900 } == true)
            let stats = try JSONDecoder.admin.decode(
                CacheStats.self, from: Data(try await world.cachectl(["cache", "stats", "--json"]).stdout.utf8))
            #expect(stats.lookups["exact_hit"] == 3, "the refused request's hit is not counted")
        } catch {
            Issue.record("distilld stderr:\n\(world.daemon.stderr.suffix(4000))")
            await world.stop()
            throw error
        }
        await world.stop()
    }

    @Test func pipelinedRequestsAreAnsweredInOrder() async throws {
        let world = try await EndToEnd.World.start()
        do {
            _ = try await Self.post(world, body: Self.chat(Self.question), key: nil)
            func request(_ body: String) -> String {
                "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
            }
            // A miss (the teacher takes a while), then a hit, then a hit, sent at once.
            let unseen = EndToEnd.samples[7].query
            let pipelined = request(Self.chat(unseen)) + request(Self.chat(Self.question)) + request(Self.chat(Self.question))
                + "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            let exchange = try await RawHTTP.exchange(.init(world.http), [Data(pipelined.utf8)])
            let sources = exchange.answer.components(separatedBy: "\r\n").compactMap { line in
                line.lowercased().hasPrefix("x-distill-source: ") ? String(line.dropFirst("x-distill-source: ".count)) : nil
            }
            #expect(sources == ["teacher", "cache", "cache"], "\(exchange.answer)")
            #expect(exchange.answer.components(separatedBy: "HTTP/1.1 200").count == 5)
            #expect(exchange.answer.hasSuffix(#"{"status":"ok"}"#))
        } catch {
            Issue.record("distilld stderr:\n\(world.daemon.stderr.suffix(4000))")
            await world.stop()
            throw error
        }
        await world.stop()
    }
}
