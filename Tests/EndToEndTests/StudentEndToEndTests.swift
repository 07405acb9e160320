import DistillAPI
import DistillClient
import Foundation
import Testing

/// The student through real processes: distilld learns from teacher-sim's Banking77 answers on its
/// own, serves what it is sure of, rolls back, and survives a kill in the middle of training.
@Suite(.timeLimit(.minutes(10)))
struct StudentEndToEndTests {
    /// Every Banking77 query of the soft-label teacher file with the teacher's answer, interleaved
    /// (the file is sorted by intent): line i·7919 mod n comes i-th, a permutation as 7919 is prime
    /// and does not divide n.
    static let traffic: [(query: String, answer: String)] = {
        struct Line: Decodable { var text: String; var top: [[JSONValue]] }
        let lines = try! String(contentsOfFile: EndToEnd.softLabels, encoding: .utf8).split(separator: "\n").map { text in
            let line = try! JSONDecoder().decode(Line.self, from: Data(text.utf8))
            return (query: line.text, answer: line.top[0][0].stringValue!)
        }
        precondition(!lines.count.isMultiple(of: 7919))
        return lines.indices.map { lines[$0 * 7919 % lines.count] }
    }()

    /// Sends `queries` eight at a time; the replies in order.
    static func send(
        _ world: EndToEnd.World, _ queries: ArraySlice<(query: String, answer: String)>, headers: [String: String] = [:]
    ) async throws -> [ChatReply] {
        let indexed = Array(queries.enumerated())
        let client = world.client()
        var replies = [ChatReply?](repeating: nil, count: indexed.count)
        for start in stride(from: 0, to: indexed.count, by: 8) {
            try await withThrowingTaskGroup(of: (Int, ChatReply).self) { group in
                for (offset, item) in indexed[start..<min(start + 8, indexed.count)] {
                    group.addTask { (offset, try await client.complete(EndToEnd.request(item.query), headers: headers)) }
                }
                for try await (offset, reply) in group { replies[offset] = reply }
            }
        }
        return replies.compactMap { $0 }
    }

    /// Each probe's source and answer, asked one at a time (audits fall on the same requests every time).
    static func probe(_ world: EndToEnd.World, _ queries: ArraySlice<(query: String, answer: String)>) async throws -> [String] {
        var answers: [String] = []
        for item in queries {
            let reply = try await world.client().complete(EndToEnd.request(item.query), headers: ["cache-control": "no-store"])
            answers.append("\(reply.info.source?.rawValue ?? "?"): \(reply.answer ?? "?")")
        }
        return answers
    }

    /// Whether `probes` come from the version that gave `first`: it answers some, and each it answers
    /// that it answered then gets the same answer. (Which probes reach a student also depends on what
    /// the verified cache and the novelty tests have seen since, so the sets may differ.)
    static func sameVersion(_ probes: [String], as first: [String]) -> Bool {
        let answered = zip(probes, first).filter { $0.0.hasPrefix("student:") && $0.1.hasPrefix("student:") }
        return !answered.isEmpty && answered.allSatisfy { $0.0 == $0.1 }
    }

    /// Polls the distiller until a run satisfies `condition` (a run trains in a few seconds).
    static func awaitRun(_ world: EndToEnd.World, _ condition: (DistillRunInfo) -> Bool) async throws -> DistillRunInfo {
        let deadline = ContinuousClock.now + .seconds(120)
        while ContinuousClock.now < deadline {
            if let run = try await world.socketClient.distillStatus().runs.first(where: condition) { return run }
            try await Task.sleep(for: .milliseconds(5))
        }
        throw E2EFailure("no distill run came to the expected state in 120 s")
    }

    @Test func anEmptyDaemonAnswersFromItsStudentAfterItsFirstScheduledDistillation() async throws {
        // The backstop timer never fires within the test: the commits alone must start the run.
        let world = try await EndToEnd.World.start(environment: [
            "DISTILL_DISTILL_INTERVAL_SECONDS": "3600", "DISTILL_DISTILL_MIN_ROWS": "1500", "DISTILL_DISTILL_MIN_NEW_ROWS": "1000000",
        ])
        do {
            // 2,500 queries, so that at least 1,500 reach the teacher: the cache serves some paraphrases.
            let taught = try await Self.send(world, Self.traffic[..<2500])
            #expect(!taught.prefix(1000).contains { $0.info.source == .student }, "no student before the first distillation")

            // Nobody asks for a run: the 1,500th teacher answer's commit starts it, on about those 1,500
            // (requests go on meanwhile, eight at a time, while it reads the log).
            let run = try await Self.awaitRun(world) { $0.isFinished }
            #expect(run.trigger == .scheduled && run.outcome == .promoted, "\(run)")
            #expect((1500..<1600).contains(run.rows ?? 0), "\(run)")
            let status = try await world.socketClient.studentStatus()
            let threshold = try #require(status.scopes.first?.threshold)

            let unseen = Self.traffic[3000..<3400]
            let replies = try await Self.send(world, unseen)
            let fromStudent = zip(unseen, replies).filter { $0.1.info.source == .student }
            let agreeing = fromStudent.count { $0.0.answer == $0.1.answer }
            print("student answered \(fromStudent.count) of \(unseen.count) unseen queries, \(agreeing) as the teacher would")
            #expect(fromStudent.count >= unseen.count / 5)
            #expect(Double(agreeing) >= 0.9 * Double(fromStudent.count))
            #expect(fromStudent.allSatisfy { $0.1.info.confidence ?? 0 >= threshold - 1e-4 })
            let metrics = try await world.client().metrics()
            let studentReplies = (taught + replies).count { $0.info.source == .student }
            #expect(metrics.contains(#"distill_student_decisions_total{decision="answer"} \#(studentReplies)"#))
            #expect(metrics.contains(#"distill_distill_runs_total{outcome="promoted"} 1"#))
            // What guards the answers, per scope: the audit share in force, the tests, the shift.
            for series in [
                "distill_student_audit_share", "distill_student_audit_test_progress", "distill_student_shift_suspected",
                "distill_student_shift_evident",
            ] {
                #expect(metrics.contains("\(series){scope=\""), "\(series)")
            }
            let guards = try await world.socketClient.studentStatus().scopes.first
            #expect(guards?.auditTest?.alarmed == false && guards?.shiftEvident == false && guards?.novelAbstentions != nil, "\(String(describing: guards))")
            let shown = try await world.cachectl(["student", "status"])
            #expect(shown.status == 0 && shown.stdout.contains("NOVEL") && shown.stdout.contains("AUDIT SHARE"), "\(shown.stdout)")
        } catch {
            Issue.record("distilld stderr:\n\(world.daemon.stderr)")
            await world.stop()
            throw error
        }
        await world.stop()
    }

    /// Sends unseen queries one at a time, from `next` on, until `count` of them were answered by the teacher.
    static func teach(_ world: EndToEnd.World, teacherAnswers count: Int, from next: inout Int) async throws {
        var answered = 0
        while answered < count {
            let reply = try await world.client().complete(EndToEnd.request(traffic[next].query))
            if reply.info.source == .teacher { answered += 1 }
            next += 1
        }
    }

    @Test func aScopeWaitsForATenthOfTheAnswersItLastTrainedOn() async throws {
        let world = try await EndToEnd.World.start(environment: [
            "DISTILL_DISTILL_INTERVAL_SECONDS": "3600", "DISTILL_DISTILL_MIN_ROWS": "300", "DISTILL_DISTILL_MIN_NEW_ROWS": "5",
        ])
        do {
            // One request at a time, and none while a run reads the log: each run reads exactly the answers that made it due.
            var next = 0
            try await Self.teach(world, teacherAnswers: 300, from: &next)
            let first = try await Self.awaitRun(world) { $0.isFinished }
            #expect(first.rows == 300 && first.version != nil, "\(first)")
            // A tenth of 300 is more than min_new_rows (5): the next run waits for 30 new answers (15 while no student serves).
            let step = first.outcome == .promoted ? 30 : 15
            try await Self.teach(world, teacherAnswers: step, from: &next)
            let second = try await Self.awaitRun(world) { $0.id > first.id && $0.isFinished }
            #expect(second.rows == 300 + step, "\(second)")
        } catch {
            Issue.record("distilld stderr:\n\(world.daemon.stderr)")
            await world.stop()
            throw error
        }
        await world.stop()
    }

    @Test func rollbackRestoresAnswersAndAKillDuringTrainingLeavesTheOldVersionServing() async throws {
        // Runs only when asked for; the cache keeps only the first lesson's answers, so probes meet
        // the same cache every time.
        var world = try await EndToEnd.World.start(environment: ["DISTILL_DISTILL_ENABLED": "false", "DISTILL_DISTILL_MIN_ROWS": "1000"])
        do {
            _ = try await Self.send(world, Self.traffic[..<1500])
            var run = try await world.cachectl(["distill", "run", "--wait", "--json"])
            #expect(run.status == 0 && run.stdout.contains(#""outcome" : "promoted""#), "\(run.stdout)")
            let probes = Self.traffic[4000..<4150]
            let first = try await Self.probe(world, probes)
            #expect(first.contains { $0.hasPrefix("student:") })

            _ = try await Self.send(world, Self.traffic[1500..<2500], headers: ["cache-control": "no-store"])
            run = try await world.cachectl(["distill", "run", "--wait", "--json"])
            #expect(run.status == 0, "\(run.stdout)")
            var versions = try await world.socketClient.studentVersions()
            let second = try #require(versions.first)
            if second.status == "rejected" {
                let refused = try await world.cachectl(["student", "promote", String(second.id)])
                #expect(refused.status == 1 && refused.stderr.contains("--force"), "the gate's rejection stands without --force")
            }
            if second.status != "active" {
                let promoted = try await world.cachectl(["student", "promote", String(second.id), "--force"])
                #expect(promoted.status == 0)
            }
            let afterSecond = try await Self.probe(world, probes)
            #expect(afterSecond != first, "the second version answers differently")

            let rollback = try await world.cachectl(["student", "rollback"])
            #expect(rollback.status == 0, "\(rollback.stdout)")
            #expect(Self.sameVersion(try await Self.probe(world, probes), as: first), "the first version's answers are back")

            // One scope taken out of service and back.
            let disabled = try await world.cachectl(["student", "disable", "--scope", String(second.scope.prefix(8))])
            #expect(disabled.status == 0, "\(disabled.stderr)")
            #expect(try await Self.probe(world, probes).allSatisfy { !$0.hasPrefix("student:") }, "the teacher answers a disabled scope")
            #expect(try await world.socketClient.studentStatus().disabledScopes == [second.scope])
            #expect(try await world.cachectl(["student", "enable", "--scope", String(second.scope.prefix(8))]).status == 0)
            #expect(Self.sameVersion(try await Self.probe(world, probes), as: first))

            // A run killed while it trains: the daemon restarts with the version that served before.
            let queued = try await world.cachectl(["distill", "run", "--json"])
            #expect(queued.status == 0)
            _ = try await Self.awaitRun(world) { $0.phase == .training }
            world.daemon.signal(SIGKILL)
            #expect(await world.daemon.exitStatus() == SIGKILL)
            try await world.startDaemon(environment: ["DISTILL_DISTILL_ENABLED": "false", "DISTILL_DISTILL_MIN_ROWS": "1000"])
            versions = try await world.socketClient.studentVersions()
            #expect(versions.count == 2, "the killed run stored nothing")
            let serving = try await world.socketClient.studentStatus().scopes
            #expect(serving.map(\.version) == [versions.last?.id] && serving.allSatisfy(\.serving))
            #expect(Self.sameVersion(try await Self.probe(world, probes), as: first))
        } catch {
            Issue.record("distilld stderr:\n\(world.daemon.stderr)")
            await world.stop()
            throw error
        }
        await world.stop()
    }
}

struct E2EFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
