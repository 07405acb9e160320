import DistillAPI
import Foundation
import Logging
import SeededRandom
import SQLiteStore
import Storage
import Student
import Testing

@testable import DistillCore

/// The students in service: audits, suspension, promotion and rollback, over a real store, with
/// small students trained on separable synthetic data.
@Suite struct StudentsTests {
    static let quiet = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
    static let model = "test-embedder@0"
    static let scope = String(repeating: "ab", count: 32)
    let store: SQLiteStore

    init() throws {
        store = try SQLiteStore(path: FileManager.default.temporaryDirectory.appendingPathComponent("distill-students-\(UUID().uuidString)/distill.sqlite").path)
    }

    /// Three well-separated clusters in 8 dimensions; `answers` names them.
    static func exchanges(answers: [String], count: Int = 600) -> [TeacherExchange] {
        var generator = SplitMix64(seed: 42)
        func noise() -> Float { Float.random(in: -0.1...0.1, using: &generator) }
        return (0..<count).map { i in
            let cluster = i % answers.count
            let embedding = (0..<8).map { $0 == cluster ? 1 + noise() : noise() }
            return TeacherExchange(embedding: embedding, answer: answers[cluster])
        }
    }

    static func vector(cluster: Int) -> [Float] { (0..<8).map { $0 == cluster ? 1 : 0 } }

    /// Trains a student and stores it as a version of `scope`.
    func addVersion(answers: [String], status: StudentVersionRecord.Status, embeddingModel: String = model) async throws -> Int64 {
        let model = try StudentTrainer.train(Self.exchanges(answers: answers)).model
        let holdout = HoldoutCounts(model.report.holdout)
        let metrics = StudentVersionMetrics(
            embeddingModel: embeddingModel, classes: model.classes.count, threshold: model.threshold.map(Double.init),
            temperature: Double(model.temperature), trainingRows: model.report.trainingCount, softTargetRows: 0, epochs: 1,
            bestEpoch: 1, calibrationErrorBefore: 0, calibrationErrorAfter: 0, holdout: holdout, floatHoldout: holdout,
            trafficCoverage: nil, trafficAgreement: nil, incumbent: nil, decision: "test")
        return try await store.addStudentVersion(
            StudentVersionRecord(
                scope: Self.scope, createdAt: Date(), status: status, model: model.encoded(),
                metrics: String(decoding: try JSONEncoder().encode(metrics), as: UTF8.self), trainedThrough: 1, trainingSeconds: 0))
    }

    func students(auditShare: Double = 0.02) async throws -> Students {
        var configuration = StudentSettings()
        configuration.auditShare = auditShare
        return try await Students.open(
            store: store, configuration: configuration, embeddingModel: Self.model, metrics: RecordingMetrics(), logger: Self.quiet)
    }

    @Test func theAuditShareOfConfidentAnswersHolds() async throws {
        _ = try await addVersion(answers: ["a", "b", "c"], status: .active)
        var generator = SplitMix64(seed: 7)
        for share in [0.02, 0.1] {
            let students = try await students(auditShare: share)
            var audits = 0
            for i in 0..<10_000 {
                // Distinct requests near the clusters: confident, with signs of their own in 8 + 376 dimensions.
                let vector = Self.vector(cluster: i % 3).map { $0 + Float.random(in: -0.05...0.05, using: &generator) }
                    + (0..<376).map { _ in Float.random(in: -0.01...0.01, using: &generator) }
                let decision = try #require(students.decide(scope: Self.scope, vector: Array(vector.prefix(8))))
                #expect(decision.prediction.isConfident)
                // Picked by content: the embedding's signs, not the order requests come in. The share is a floor (the
                // policy raises it for a version's first answers and borderline requests), never below `share`.
                let key = Students.auditKey(Array(vector.prefix(8)))
                if case .audit = decision.action { #expect(key < max(share, 0.1)) }
                if key < share { #expect(decision.action == .audit || decision.action == .novel) }
                if Students.auditKey(vector) < share { audits += 1 }
                #expect(Students.auditKey(vector) == Students.auditKey(vector.map { $0 * 1.001 }))
            }
            // Binomial: within four standard deviations of the share.
            let expected = 10_000 * share, deviation = (expected * (1 - share)).squareRoot()
            #expect(abs(Double(audits) - expected) <= 4 * deviation, "share \(share): \(audits)")
        }
    }

    @Test func aStudentAnswersOnlyItsOwnScopeAndOnlyWhenConfident() async throws {
        _ = try await addVersion(answers: ["a", "b", "c"], status: .active)
        let students = try await students()
        #expect(students.decide(scope: String(repeating: "cd", count: 32), vector: Self.vector(cluster: 0)) == nil)
        let confident = try #require(students.decide(scope: Self.scope, vector: Self.vector(cluster: 1)))
        #expect(confident.prediction.answer == "b")
        // Halfway between two clusters, it is not sure.
        let between: [Float] = (0..<8).map { $0 < 2 ? 0.5 : 0 }
        let unsure = try #require(students.decide(scope: Self.scope, vector: between))
        guard case .unsure = unsure.action else {
            Issue.record("a request between two classes was \(unsure.action) at confidence \(unsure.prediction.confidence)")
            return
        }
    }

    @Test func coverageIsCountedOnceTheStudentHasDecidedEnoughRequests() async throws {
        _ = try await addVersion(answers: ["a", "b", "c"], status: .active)
        let students = try await students()
        let estimate = try #require(students.active(scope: Self.scope)).coverage
        // Three of every four requests on a cluster (confident), the fourth between two (unsure).
        let between: [Float] = (0..<8).map { $0 < 2 ? 0.5 : 0 }
        for i in 0..<Int(Students.minimumDecisionsCounted) {
            if i == Int(Students.minimumDecisionsCounted) - 1 {
                // One short of the count: still the estimate made at promotion.
                #expect(students.active(scope: Self.scope)?.coverage == estimate)
                #expect(students.status().scopes.first?.liveCoverage == nil)
            }
            _ = students.decide(scope: Self.scope, vector: i % 4 == 3 ? between : Self.vector(cluster: i % 3))
        }
        #expect(estimate != 0.75)
        #expect(students.active(scope: Self.scope)?.coverage == 0.75)
        #expect(students.status().scopes.first?.liveCoverage == 0.75)
    }

    @Test func auditsThatDisagreeSuspendTheStudentAndTheSuspensionIsStored() async throws {
        let version = try await addVersion(answers: ["a", "b", "c"], status: .active)
        let students = try await students(auditShare: 1)
        // Agreeing audits keep it serving…
        for _ in 0..<100 {
            let decision = try #require(students.decide(scope: Self.scope, vector: Self.vector(cluster: 0)))
            await students.recordTeacherAnswer(decision, vector: nil, teacherAnswer: "A ")
        }
        #expect(students.status().scopes.first?.liveAgreement == 1)
        // …until the teacher starts answering otherwise: suspended once the sequential test alarms, however long the
        // good run before (log(10,000) / log(2): 14 disagreements in a row).
        var audits = 0
        while let decision = students.decide(scope: Self.scope, vector: Self.vector(cluster: 0)) {
            await students.recordTeacherAnswer(decision, vector: nil, teacherAnswer: "b")
            audits += 1
            try #require(audits < 200, "never suspended")
        }
        #expect(audits == 14, "one bad audit is noise, not a reason to suspend")
        #expect(students.status().scopes.first?.serving == false)
        #expect(try await store.studentVersion(id: version)?.status == .suspended)
        let restarted = try await self.students()
        #expect(restarted.decide(scope: Self.scope, vector: Self.vector(cluster: 0)) == nil, "suspended after a restart too")
        #expect(restarted.status().scopes.map { [$0.version, $0.serving ? 1 : 0] } == [[version, 0]], "and still listed, as not serving")
        // Promoted by hand, it serves again.
        _ = try await restarted.promote(version: version)
        #expect(restarted.status().scopes.map { [$0.version, $0.serving ? 1 : 0] } == [[version, 1]])
        #expect(restarted.decide(scope: Self.scope, vector: Self.vector(cluster: 0)) != nil)
        // A newer active version serves in its place.
        let next = try await addVersion(answers: ["a", "b", "c"], status: .active)
        #expect(try await self.students().status().scopes.map { [$0.version, $0.serving ? 1 : 0] } == [[next, 1]])
    }

    @Test func rollbackServesThePreviousVersionAgainAndPromoteAnyVersion() async throws {
        let first = try await addVersion(answers: ["a", "b", "c"], status: .active)
        let second = try await addVersion(answers: ["x", "y", "z"], status: .active)
        let students = try await students()
        #expect(students.decide(scope: Self.scope, vector: Self.vector(cluster: 2))?.prediction.answer == "z")

        let restored = try await students.rollback(scope: nil)
        #expect(restored.id == first && restored.status == .active)
        #expect(students.decide(scope: Self.scope, vector: Self.vector(cluster: 2))?.prediction.answer == "c")
        #expect(try await store.studentVersion(id: second)?.status == .retired)
        await #expect(throws: DistillError.self) { try await students.rollback(scope: nil) }

        _ = try await students.promote(version: second)
        #expect(students.decide(scope: Self.scope, vector: Self.vector(cluster: 2))?.prediction.answer == "z")
        #expect(try await store.currentStudentVersions().map(\.id) == [second])
    }

    @Test func anotherNodesPromotionRollbackAndSuspensionAreFollowed() async throws {
        _ = try await addVersion(answers: ["a", "b", "c"], status: .active)
        let second = try await addVersion(answers: ["x", "y", "z"], status: .active)
        // Two nodes on one store: what one does, the other follows when the feed says the scope changed.
        let here = try await students()
        let there = try await students()
        _ = try await here.rollback(scope: nil)
        #expect(there.decide(scope: Self.scope, vector: Self.vector(cluster: 2))?.prediction.answer == "z")
        try await there.follow(scope: Self.scope)
        #expect(there.decide(scope: Self.scope, vector: Self.vector(cluster: 2))?.prediction.answer == "c")

        _ = try await here.promote(version: second)
        try await there.follow(scope: Self.scope)
        #expect(there.decide(scope: Self.scope, vector: Self.vector(cluster: 2))?.prediction.answer == "z")

        try await store.setStudentVersionStatus(id: second, .suspended)
        try await there.follow(scope: Self.scope)
        #expect(there.decide(scope: Self.scope, vector: Self.vector(cluster: 2)) == nil, "a suspended version does not answer")
        try await there.follow(scope: Self.scope)
        #expect(there.status().scopes.first?.version == second, "following twice changes nothing")
    }

    @Test func aRejectedVersionIsPromotedOnlyWithForce() async throws {
        _ = try await addVersion(answers: ["a", "b", "c"], status: .active)
        let rejected = try await addVersion(answers: ["x", "y", "z"], status: .rejected)
        let students = try await students()
        await #expect(throws: DistillError.versionRejected(rejected)) { try await students.promote(version: rejected) }
        #expect(students.decide(scope: Self.scope, vector: Self.vector(cluster: 2))?.prediction.answer == "c")
        _ = try await students.promote(version: rejected, force: true)
        #expect(students.decide(scope: Self.scope, vector: Self.vector(cluster: 2))?.prediction.answer == "z")
    }

    @Test func aDisabledScopeIsAnsweredByTheTeacherAcrossARestart() async throws {
        _ = try await addVersion(answers: ["a", "b", "c"], status: .active)
        let students = try await students()
        try await students.setEnabled(false, scope: Self.scope)
        #expect(students.decide(scope: Self.scope, vector: Self.vector(cluster: 0)) == nil)
        let restarted = try await self.students()
        #expect(restarted.decide(scope: Self.scope, vector: Self.vector(cluster: 0)) == nil, "the setting is stored")
        #expect(restarted.status().disabledScopes == [Self.scope])
        #expect(restarted.status().scopes.map { [$0.serving, $0.disabled] } == [[false, true]])
        try await restarted.setEnabled(true, scope: Self.scope)
        #expect(restarted.decide(scope: Self.scope, vector: Self.vector(cluster: 0))?.prediction.answer == "a")
        #expect(try await self.students().status().disabledScopes.isEmpty)
    }

    /// Confident, but far from every training answer of its class: the teacher answers.
    static let novel: [Float] = (0..<8).map { [0: 0.6, 5: 0.8][$0] ?? 0 }

    @Test func aNovelRequestIsNotAnsweredAndIsCounted() async throws {
        _ = try await addVersion(answers: ["a", "b", "c"], status: .active)
        let students = try await students()
        let decision = try #require(students.decide(scope: Self.scope, vector: Self.novel))
        #expect(decision.prediction.isConfident && decision.prediction.novel, "\(decision.prediction)")
        #expect(decision.action == .novel)
        #expect(students.decide(scope: Self.scope, vector: Self.vector(cluster: 0))?.prediction.novel == false)
        let status = try #require(students.status().scopes.first)
        #expect(status.novelAbstentions == 1 && status.shiftSuspected == true, "a new version is on probation")
    }

    @Test func aVersionsFirstAnswersAreAuditedMoreThanLaterOnes() async throws {
        _ = try await addVersion(answers: ["a", "b", "c"], status: .active)
        let students = try await students()
        var generator = SplitMix64(seed: 11)
        var audits = (first: 0, later: 0)
        for i in 0..<1_500 {
            let vector = Self.vector(cluster: i % 3).map { $0 + Float.random(in: -0.02...0.02, using: &generator) }
            let decision = try #require(students.decide(scope: Self.scope, vector: vector))
            try #require(decision.action == .answer || decision.action == .audit, "\(decision.action)")
            if decision.action == .audit { i < 500 ? (audits.first += 1) : (audits.later += 1) }
        }
        // 10% of the first 500, 2% after (binomial, within four standard deviations).
        #expect((30...70).contains(audits.first) && (5...36).contains(audits.later), "\(audits)")
        #expect(students.status().scopes.first?.auditShareInForce == 0.02)
    }

    @Test func novelTrafficMakesAShiftSuspectedAndTheScopeDueSooner() async throws {
        _ = try await addVersion(answers: ["a", "b", "c"], status: .active)
        let students = try await students()
        for _ in 0..<1_000 { _ = students.decide(scope: Self.scope, vector: Self.vector(cluster: 1)) }
        #expect(students.status().scopes.first?.shiftSuspected == false, "in-distribution traffic is no shift")
        #expect(students.status().scopes.first?.shiftEvident == false)
        #expect(students.shift(scope: Self.scope) == nil)
        // Unseen requests, each a little apart: the novelty test alarms within a few dozen (at most 17 on average).
        var generator = SplitMix64(seed: 5)
        var alarmedAfter: Int?
        for i in 1...60 {
            _ = students.decide(scope: Self.scope, vector: Self.novel.map { $0 + Float.random(in: -0.02...0.02, using: &generator) })
            if alarmedAfter == nil, students.status().scopes.first?.shiftSuspected == true { alarmedAfter = i }
        }
        let status = try #require(students.status().scopes.first)
        #expect(try #require(alarmedAfter) <= 30)
        #expect(status.noveltyTest?.alarmed == true && status.auditShareInForce == 0.1)
        #expect(status.novelAbstentions == 60)
        #expect(students.shift(scope: Self.scope) == .novelTraffic(abstentions: 60))
        // The shift is evident: what it learned is turned away too, until a new version serves.
        #expect(status.shiftEvident == true)
        let learned = try #require(students.decide(scope: Self.scope, vector: Self.vector(cluster: 1)))
        #expect(learned.prediction.serves() && learned.action == .novel, "\(learned)")
        #expect(students.status().scopes.first?.novelAbstentions == 61)
    }

    @Test func aRecurringAnswerThatIsNoneOfTheClassesIsANewClass() async throws {
        _ = try await addVersion(answers: ["a", "b", "c"], status: .active)
        let students = try await students()
        for answer in ["d", "d", "a", "e", "d"] {
            let decision = try #require(students.decide(scope: Self.scope, vector: Self.novel))
            await students.recordTeacherAnswer(decision, vector: nil, teacherAnswer: answer)
        }
        let status = try #require(students.status().scopes.first)
        #expect(status.newClasses == ["d"] && status.shiftSuspected == true)
    }

    @Test func aRequestNearerToANewClassThanToWhatItLearnedIsNotAnswered() async throws {
        _ = try await addVersion(answers: ["a", "b", "c"], status: .active)
        let students = try await students()
        // The teacher answers "d", none of its classes, to requests just beside cluster 0 (three times: a class).
        let beside = Self.vector(cluster: 0).enumerated().map { $0.offset == 7 ? 0.05 : $0.element }
        for _ in 0..<3 {
            let decision = try #require(students.decide(scope: Self.scope, vector: beside))
            #expect(decision.action != .novel)
            await students.recordTeacherAnswer(decision, vector: beside, teacherAnswer: "d")
        }
        let status = try #require(students.status().scopes.first)
        #expect(status.newClasses == ["d"])
        let near = try #require(students.decide(scope: Self.scope, vector: beside.map { $0 * 2 }))
        #expect(near.prediction.isConfident && !near.prediction.novel && !near.prediction.borderline && near.action == .novel, "\(near)")
        // Cluster 1 is as learned.
        let far = try #require(students.decide(scope: Self.scope, vector: Self.vector(cluster: 1)))
        #expect(far.action == .answer || far.action == .audit, "\(far.action)")
    }

    @Test func aVersionOfAnotherEmbeddingModelNeverServes() async throws {
        let other = try await addVersion(answers: ["a", "b", "c"], status: .active, embeddingModel: "another@1")
        let students = try await students()
        #expect(students.decide(scope: Self.scope, vector: Self.vector(cluster: 0)) == nil)
        await #expect(throws: DistillError.self) { try await students.promote(version: other) }
    }
}
