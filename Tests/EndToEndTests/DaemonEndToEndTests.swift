import AsyncHTTPClient
import DistillAPI
import Foundation
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import Testing

/// distilld, teacher-sim and cachectl as real processes, over loopback TCP and a Unix socket.
@Suite(.timeLimit(.minutes(2)))
struct DaemonEndToEndTests {
    static let softLabels = RunningProcess.packageRoot.appendingPathComponent("../shared/data/banking77/teacher_soft.jsonl").standardized.path
    static let modelDirectory = RunningProcess.packageRoot.appendingPathComponent("models/all-MiniLM-L6-v2").path

    /// Banking77 queries and the soft-label teacher's answers to them, read from the data file.
    static let samples: [(query: String, answer: String)] = {
        struct Line: Decodable { var text: String; var top: [[JSONValue]] }
        return try! String(contentsOfFile: softLabels, encoding: .utf8).split(separator: "\n").prefix(200).map { text in
            let line = try! JSONDecoder().decode(Line.self, from: Data(text.utf8))
            return (line.text, line.top[0][0].stringValue!)
        }
    }()
    static var sample: (query: String, answer: String) { samples[0] }

    /// A test's world: a temp directory, teacher-sim, and distilld started on it.
    struct World {
        let directory: URL
        let simulator: RunningProcess
        let simulatorURL: String
        var daemon: RunningProcess
        var http: String
        var socket: String { directory.appendingPathComponent("distilld.sock").path }

        static func start(simulatorFlags: [String] = [], environment: [String: String] = [:]) async throws -> World {
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("distill-e2e-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            let simulator = try RunningProcess("teacher-sim", ["--port", "0", "--soft-jsonl", softLabels] + simulatorFlags, in: directory)
            let simulatorURL = try await simulator.address("http://")
            var world = World(directory: directory, simulator: simulator, simulatorURL: simulatorURL, daemon: simulator, http: "")
            try await world.startDaemon(environment: environment)
            return world
        }

        mutating func startDaemon(environment: [String: String] = [:]) async throws {
            daemon = try RunningProcess(
                "distilld",
                ["--http", "127.0.0.1:0", "--socket", socket, "--data-dir", directory.appendingPathComponent("data").path,
                 "--teacher-url", "\(simulatorURL)/v1"],
                environment: ["DISTILL_EMBEDDING_MODEL_DIR": modelDirectory].merging(environment) { $1 }, in: directory)
            http = try await daemon.address("http://")
            _ = try await daemon.address("unix:")
        }

        func stop() async {
            await daemon.stop()
            await simulator.stop()
        }

        func cachectl(_ arguments: [String]) async throws -> (status: Int32, stdout: String) {
            try await runToCompletion("cachectl", ["--socket", socket] + arguments, in: directory)
        }

        func simulatorStats() async throws -> JSONValue {
            try await get("\(simulatorURL)/sim/stats").json
        }
    }

    struct Reply {
        var status: Int
        var headers: [String: String]
        var body: Data
        var json: JSONValue { (try? JSONValue.parse(body)) ?? .null }
        var errorCode: String? { json["error"]?["code"]?.stringValue }
    }

    static func send(_ url: String, method: HTTPMethod = .POST, body: Data? = nil) async throws -> Reply {
        var request = HTTPClientRequest(url: url)
        request.method = method
        if let body { request.body = .bytes(ByteBuffer(data: body)) }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(60))
        let data = try await response.body.collect(upTo: 16 << 20)
        return Reply(
            status: Int(response.status.code),
            headers: Dictionary(response.headers.map { ($0.name.lowercased(), $0.value) }, uniquingKeysWith: { a, _ in a }),
            body: Data(buffer: data))
    }

    static func get(_ url: String) async throws -> Reply { try await send(url, method: .GET) }

    static func completion(_ query: String, stream: Bool = false) -> Data {
        let body: JSONValue = ["model": "gpt-test", "stream": .bool(stream), "messages": [["role": "user", "content": .string(query)]]]
        return body.encoded()
    }

    static func unixURL(_ socket: String, _ path: String) -> String {
        "http+unix://\(socket.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!)\(path)"
    }

    @Test func servesPlainAndStreamedAnswersLogsBothAndShutsDownCleanly() async throws {
        let world = try await World.start()
        do {
            let (query, answer) = Self.sample

            let plain = try await Self.send("\(world.http)/v1/chat/completions", body: Self.completion(query))
            #expect(plain.status == 200)
            #expect(plain.headers["x-distill-source"] == "teacher")
            let plainID = try #require(plain.headers["x-request-id"])
            #expect(plain.json["choices"]?.arrayValue?.first?["message"]?["content"]?.stringValue == answer)

            let (streamedQuery, streamedAnswer) = Self.samples[1]
            let streamed = try await Self.send(Self.unixURL(world.socket, "/v1/chat/completions"), body: Self.completion(streamedQuery, stream: true))
            #expect(streamed.status == 200)
            #expect(streamed.headers["content-type"] == "text/event-stream")
            #expect(streamed.headers["x-distill-source"] == "teacher")
            var parser = ServerSentEventParser()
            let events = try parser.feed(streamed.body)
            #expect(events.last?.isDone == true)
            let text = events.dropLast().compactMap { event in
                (try? JSONValue.parse(Data(event.data.utf8)))?["choices"]?.arrayValue?.first?["delta"]?["content"]?.stringValue
            }.joined()
            #expect(text == streamedAnswer)

            // The socket is its owner's only.
            let mode = try FileManager.default.attributesOfItem(atPath: world.socket)[.posixPermissions] as? NSNumber
            #expect(mode?.intValue == 0o600)

            // cachectl sees both exchanges, and the daemon's state.
            let export = try await world.cachectl(["teacher-log", "export", "--json"])
            #expect(export.status == 0)
            let entries = try export.stdout.split(separator: "\n").map { try JSONDecoder.admin.decode(TeacherLogEntry.self, from: Data($0.utf8)) }
            #expect(entries.map(\.answer) == [answer, streamedAnswer])
            #expect(entries.map(\.streamed) == [false, true])
            #expect(entries.first?.requestID == plainID)
            #expect(entries.allSatisfy { $0.topLogprobs?.first?.topLogprobs.count == 5 })

            let status = try await world.cachectl(["status", "--json"])
            let daemonStatus = try JSONDecoder.admin.decode(DaemonStatus.self, from: Data(status.stdout.utf8))
            #expect(daemonStatus.store.teacherLogRows == 2)
            #expect(daemonStatus.listeners.contains("unix:\(world.socket)"))
            let table = try await world.cachectl(["status"])
            #expect(table.status == 0 && table.stdout.contains("breaker closed"))
            let stats = try await world.cachectl(["stats", "--json"])
            #expect(try JSONDecoder.admin.decode(DaemonStats.self, from: Data(stats.stdout.utf8)).requestsBySource == ["teacher": 2])

            let metrics = try await Self.get("\(world.http)/metrics")
            #expect(String(decoding: metrics.body, as: UTF8.self).contains(#"distill_teacher_calls_total{outcome="success"} 2"#))

            world.daemon.signal(SIGTERM)
            #expect(await world.daemon.exitStatus() == 0)
            #expect(!FileManager.default.fileExists(atPath: world.socket), "the socket is removed on shutdown")
        } catch {
            Issue.record("distilld stderr:\n\(world.daemon.stderr)")
            await world.stop()
            throw error
        }
        await world.stop()
    }

    @Test func anAnswerGivenBeforeAKillIsInTheLogAfterRestart() async throws {
        var world = try await World.start()
        do {
            let reply = try await Self.send("\(world.http)/v1/chat/completions", body: Self.completion(Self.sample.query))
            #expect(reply.status == 200)
            world.daemon.signal(SIGKILL)
            #expect(await world.daemon.exitStatus() == SIGKILL)

            // The killed daemon left its socket file behind; the new one replaces it.
            try await world.startDaemon()
            let export = try await world.cachectl(["teacher-log", "export"])
            let entries = try export.stdout.split(separator: "\n").map { try JSONDecoder.admin.decode(TeacherLogEntry.self, from: Data($0.utf8)) }
            #expect(entries.map(\.requestID) == [reply.headers["x-request-id"]])
        } catch {
            Issue.record("distilld stderr:\n\(world.daemon.stderr)")
            await world.stop()
            throw error
        }
        await world.stop()
    }

    @Test func aFailingTeacherGivesA502WithinTheRetryBudgetThenOpensTheBreaker() async throws {
        let world = try await World.start(
            simulatorFlags: ["--error-rate", "1"],
            environment: [
                "DISTILL_TEACHER_MAX_ATTEMPTS": "3", "DISTILL_TEACHER_BACKOFF_INITIAL_MS": "20",
                "DISTILL_TEACHER_BACKOFF_MAX_MS": "50", "DISTILL_TEACHER_REQUEST_TIMEOUT_SECONDS": "10",
                "DISTILL_TEACHER_BREAKER_FAILURE_THRESHOLD": "3", "DISTILL_TEACHER_BREAKER_OPEN_SECONDS": "60",
            ])
        do {
            let started = ContinuousClock.now
            let failed = try await Self.send("\(world.http)/v1/chat/completions", body: Self.completion(Self.sample.query))
            #expect(ContinuousClock.now - started < .seconds(10), "within the request budget")
            #expect(failed.status == 502)
            #expect(failed.errorCode == "teacher_error")
            #expect(failed.json["error"]?["type"] == "upstream_error")
            #expect(try await world.simulatorStats()["errors"] == 3, "three attempts")

            let refused = try await Self.send("\(world.http)/v1/chat/completions", body: Self.completion(Self.sample.query))
            #expect(refused.status == 503)
            #expect(refused.errorCode == "teacher_circuit_open")
            #expect(Int(refused.headers["retry-after"] ?? "") ?? 0 > 0)
            #expect(try await world.simulatorStats()["requests"] == 3, "the open breaker kept the call from the teacher")

            let status = try await world.cachectl(["status", "--json"])
            #expect(try JSONDecoder.admin.decode(DaemonStatus.self, from: Data(status.stdout.utf8)).teacher.breakerState == "open")
            #expect(try await Self.get("\(world.http)/readyz").status == 503)
            #expect(try await world.simulatorStats()["errors"] == 3)
        } catch {
            Issue.record("distilld stderr:\n\(world.daemon.stderr)")
            await world.stop()
            throw error
        }
        await world.stop()
    }

    @Test func badInputGetsAClearErrorAndTheDaemonKeepsServing() async throws {
        let world = try await World.start()
        do {
            var invalidUTF8 = Data(#"{"model":"m","messages":[{"role":"user","content":""#.utf8)
            invalidUTF8.append(contentsOf: [0xFF, 0xFE])
            invalidUTF8.append(Data(#""}]}"#.utf8))
            let cases: [(String, Data, Int, String)] = [
                ("malformed JSON", Data(#"{"model": "m", "messages": [}"#.utf8), 400, "invalid_json"),
                ("wrong type", Data(#"{"model":"m","messages":[{"role":"user","content":"hi"}],"temperature":"warm"}"#.utf8), 400, "invalid_type"),
                ("missing messages", Data(#"{"model":"m"}"#.utf8), 400, "missing_required_parameter"),
                ("empty content", Data(#"{"model":"m","messages":[{"role":"user","content":""}]}"#.utf8), 400, "empty_content"),
                ("invalid UTF-8", invalidUTF8, 400, "invalid_encoding"),
                ("2 MiB body", Data(repeating: UInt8(ascii: " "), count: 2 << 20), 413, "request_too_large"),
            ]
            for (name, body, status, code) in cases {
                let reply = try await Self.send("\(world.http)/v1/chat/completions", body: body)
                #expect(reply.status == status, "\(name)")
                #expect(reply.errorCode == code, "\(name)")
                #expect(reply.json["error"]?["message"]?.stringValue?.isEmpty == false, "\(name)")
            }
            let unknown = try await Self.get("\(world.http)/v1/nothing-here")
            #expect(unknown.status == 404 && unknown.errorCode == "unknown_url")
            #expect(try await world.simulatorStats()["requests"] == 0, "nothing bad reached the teacher")

            let good = try await Self.send("\(world.http)/v1/chat/completions", body: Self.completion(Self.sample.query))
            #expect(good.status == 200)
        } catch {
            Issue.record("distilld stderr:\n\(world.daemon.stderr)")
            await world.stop()
            throw error
        }
        await world.stop()
    }

    @Test func cachectlSaysSoWhenNoDaemonRuns() async throws {
        let directory = FileManager.default.temporaryDirectory
        let result = try await runToCompletion("cachectl", ["--socket", "/nonexistent/distilld.sock", "status"], in: directory)
        #expect(result.status == 2)
    }
}
