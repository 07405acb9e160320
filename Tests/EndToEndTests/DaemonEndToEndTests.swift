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

    @Test func servesPlainAndStreamedAnswersLogsBothAndShutsDownCleanly() async throws {
        let world = try await EndToEnd.World.start()
        do {
            let (query, answer) = EndToEnd.sample

            let plain = try await EndToEnd.send("\(world.http)/v1/chat/completions", body: EndToEnd.completion(query))
            #expect(plain.status == 200)
            #expect(plain.headers["x-distill-source"] == "teacher")
            let plainID = try #require(plain.headers["x-request-id"])
            #expect(plain.json["choices"]?.arrayValue?.first?["message"]?["content"]?.stringValue == answer)

            let (streamedQuery, streamedAnswer) = EndToEnd.samples[1]
            let streamed = try await EndToEnd.send(EndToEnd.unixURL(world.socket, "/v1/chat/completions"), body: EndToEnd.completion(streamedQuery, stream: true))
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

            let metrics = try await EndToEnd.get("\(world.http)/metrics")
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
        var world = try await EndToEnd.World.start()
        do {
            let reply = try await EndToEnd.send("\(world.http)/v1/chat/completions", body: EndToEnd.completion(EndToEnd.sample.query))
            #expect(reply.status == 200)
            world.daemon.signal(SIGKILL)
            #expect(await world.daemon.exitStatus() == SIGKILL)

            // The killed daemon left its socket file behind; the new one replaces it.
            try await world.startDaemon()
            let export = try await world.cachectl(["teacher-log", "export"])
            let entries = try export.stdout.split(separator: "\n").map { try JSONDecoder.admin.decode(TeacherLogEntry.self, from: Data($0.utf8)) }
            #expect(entries.map(\.requestID) == [reply.headers["x-request-id"]])
            // Its cache entry was committed with it, and the index rebuilt without a snapshot.
            let again = try await EndToEnd.send("\(world.http)/v1/chat/completions", body: EndToEnd.completion(EndToEnd.sample.query))
            #expect(again.headers["x-distill-source"] == "cache")
        } catch {
            Issue.record("distilld stderr:\n\(world.daemon.stderr)")
            await world.stop()
            throw error
        }
        await world.stop()
    }

    @Test func aFailingTeacherGivesA502WithinTheRetryBudgetThenOpensTheBreakerAfterFailedRequests() async throws {
        let world = try await EndToEnd.World.start(
            simulatorFlags: ["--error-rate", "1"],
            environment: [
                "DISTILL_TEACHER_MAX_ATTEMPTS": "3", "DISTILL_TEACHER_BACKOFF_INITIAL_MS": "20",
                "DISTILL_TEACHER_BACKOFF_MAX_MS": "50", "DISTILL_TEACHER_REQUEST_TIMEOUT_SECONDS": "10",
                "DISTILL_TEACHER_BREAKER_FAILURE_THRESHOLD": "2", "DISTILL_TEACHER_BREAKER_OPEN_SECONDS": "60",
            ])
        do {
            // Each failed request made three attempts and counts once: the second is not refused.
            for failures in 1...2 {
                let started = ContinuousClock.now
                let failed = try await EndToEnd.send("\(world.http)/v1/chat/completions", body: EndToEnd.completion(EndToEnd.sample.query))
                #expect(ContinuousClock.now - started < .seconds(10), "within the request budget")
                #expect(failed.status == 502)
                #expect(failed.errorCode == "teacher_error")
                #expect(failed.json["error"]?["type"] == "upstream_error")
                #expect(try await world.simulatorStats()["errors"]?.intValue == 3 * failures, "three attempts")
            }

            let refused = try await EndToEnd.send("\(world.http)/v1/chat/completions", body: EndToEnd.completion(EndToEnd.sample.query))
            #expect(refused.status == 503)
            #expect(refused.errorCode == "teacher_circuit_open")
            #expect(Int(refused.headers["retry-after"] ?? "") ?? 0 > 0)
            #expect(try await world.simulatorStats()["requests"] == 6, "the open breaker kept the call from the teacher")

            let status = try await world.cachectl(["status", "--json"])
            #expect(try JSONDecoder.admin.decode(DaemonStatus.self, from: Data(status.stdout.utf8)).teacher.breakerState == "open")
            #expect(try await EndToEnd.get("\(world.http)/readyz").status == 503)
            #expect(try await world.simulatorStats()["errors"] == 6)
        } catch {
            Issue.record("distilld stderr:\n\(world.daemon.stderr)")
            await world.stop()
            throw error
        }
        await world.stop()
    }

    @Test func badInputGetsAClearErrorAndTheDaemonKeepsServing() async throws {
        let world = try await EndToEnd.World.start()
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
                let reply = try await EndToEnd.send("\(world.http)/v1/chat/completions", body: body)
                #expect(reply.status == status, "\(name)")
                #expect(reply.errorCode == code, "\(name)")
                #expect(reply.json["error"]?["message"]?.stringValue?.isEmpty == false, "\(name)")
            }
            let unknown = try await EndToEnd.get("\(world.http)/v1/nothing-here")
            #expect(unknown.status == 404 && unknown.errorCode == "unknown_url")
            #expect(try await world.simulatorStats()["requests"] == 0, "nothing bad reached the teacher")

            let good = try await EndToEnd.send("\(world.http)/v1/chat/completions", body: EndToEnd.completion(EndToEnd.sample.query))
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
