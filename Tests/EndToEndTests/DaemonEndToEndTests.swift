import DistillAPI
import DistillClient
import Foundation
import Testing

/// distilld, teacher-sim and cachectl as real processes, over loopback TCP and a Unix socket.
@Suite(.timeLimit(.minutes(2)))
struct DaemonEndToEndTests {

    @Test func servesPlainAndStreamedAnswersLogsBothAndShutsDownCleanly() async throws {
        let world = try await EndToEnd.World.start()
        do {
            let (query, answer) = EndToEnd.sample

            let plain = try await world.client().complete(EndToEnd.request(query))
            #expect(plain.info.source == .teacher)
            let plainID = try #require(plain.info.requestID)
            #expect(plain.answer == answer)

            // A stream (text/event-stream, to [DONE]), over the socket.
            let (streamedQuery, streamedAnswer) = EndToEnd.samples[1]
            let streamed = try await world.socketClient.stream(EndToEnd.request(streamedQuery))
            #expect(streamed.info.source == .teacher)
            #expect(try await streamed.collect().answer == streamedAnswer)

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

            #expect(try await world.client().metrics().contains(#"distill_teacher_calls_total{outcome="success"} 2"#))

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
            let reply = try await world.client().complete(EndToEnd.request(EndToEnd.sample.query))
            world.daemon.signal(SIGKILL)
            #expect(await world.daemon.exitStatus() == SIGKILL)

            // The killed daemon left its socket file behind; the new one replaces it.
            try await world.startDaemon()
            let export = try await world.cachectl(["teacher-log", "export"])
            let entries = try export.stdout.split(separator: "\n").map { try JSONDecoder.admin.decode(TeacherLogEntry.self, from: Data($0.utf8)) }
            #expect(entries.map(\.requestID) == [reply.info.requestID])
            // Its cache entry was committed with it, and the index rebuilt without a snapshot.
            let again = try await world.client().complete(EndToEnd.request(EndToEnd.sample.query))
            #expect(again.info.source == .cache)

            // Purged from the log, the answer stays cached.
            let purge = try await world.cachectl(["teacher-log", "purge", "--older-than", "0s"])
            #expect(purge.status == 0 && purge.stdout.contains("purged 1 teacher log rows"), "\(purge.stdout)\(purge.stderr)")
            #expect(try await world.socketClient.teacherLog(after: 0, limit: 10).entries.isEmpty)
            #expect(try await world.client().complete(EndToEnd.request(EndToEnd.sample.query)).info.source == .cache)
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
                let failed = await #expect(throws: DistillClientError.self) {
                    try await world.client().complete(EndToEnd.request(EndToEnd.sample.query))
                }?.apiError
                #expect(ContinuousClock.now - started < .seconds(10), "within the request budget")
                #expect(failed?.status == 502)
                #expect(failed?.code == "teacher_error")
                #expect(failed?.type == "upstream_error")
                #expect(try await world.simulatorStats()["errors"]?.intValue == 3 * failures, "three attempts")
            }

            let refused = await #expect(throws: DistillClientError.self) {
                try await world.client().complete(EndToEnd.request(EndToEnd.sample.query))
            }?.apiError
            #expect(refused?.status == 503)
            #expect(refused?.code == "teacher_circuit_open")
            #expect(refused?.retryAfterSeconds ?? 0 > 0)
            #expect(try await world.simulatorStats()["requests"] == 6, "the open breaker kept the call from the teacher")

            let status = try await world.cachectl(["status", "--json"])
            #expect(try JSONDecoder.admin.decode(DaemonStatus.self, from: Data(status.stdout.utf8)).teacher.breakerState == "open")
            #expect(try await world.client().readiness().status == "not_ready")
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
            // What a client can say that is wrong: a clear error, with its status and code.
            for (name, request, code) in [
                ("wrong type", EndToEnd.request("hi", parameters: ["temperature": "warm"]), "invalid_type"),
                ("empty content", EndToEnd.request(""), "empty_content"),
            ] {
                let error = await #expect(throws: DistillClientError.self, "\(name)") { try await world.client().complete(request) }
                #expect(error?.apiError?.status == 400 && error?.apiError?.code == code, "\(name)")
                #expect(error?.apiError?.message.isEmpty == false, "\(name)")
            }
            // Bytes that are not a request at all.
            var invalidUTF8 = Data(#"{"model":"m","messages":[{"role":"user","content":""#.utf8)
            invalidUTF8.append(contentsOf: [0xFF, 0xFE])
            invalidUTF8.append(Data(#""}]}"#.utf8))
            for (name, body, status, code) in [
                ("malformed JSON", Data(#"{"model": "m", "messages": [}"#.utf8), 400, "invalid_json"),
                ("missing messages", Data(#"{"model":"m"}"#.utf8), 400, "missing_required_parameter"),
                ("invalid UTF-8", invalidUTF8, 400, "invalid_encoding"),
                ("2 MiB body", Data(repeating: UInt8(ascii: " "), count: 2 << 20), 413, "request_too_large"),
            ] {
                let reply = try await RawHTTP.post(.init(world.http), .chatCompletions, body: body)
                #expect(reply.status == status, "\(name)")
                #expect(reply.errorCode == code, "\(name)")
            }
            let unknown = try await RawHTTP.request(.init(world.http), "GET /v1/nothing-here HTTP/1.1\r\nHost: x\r\n")
            #expect(unknown.status == 404 && unknown.errorCode == "unknown_url")
            #expect(try await world.simulatorStats()["requests"] == 0, "nothing bad reached the teacher")

            #expect(try await world.client().complete(EndToEnd.request(EndToEnd.sample.query)).answer != nil)
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
