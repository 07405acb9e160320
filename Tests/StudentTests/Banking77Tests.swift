import Embedding
import Foundation
import SeededRandom
import TestSupport
import Testing

@testable import Student

/// Banking77 with the soft-label teacher (`teacher_soft.jsonl`), in a seeded order: 3,000 teacher answers to
/// learn from, oldest first, then 1,000 queries the student never sees. Embedded once per test process with the
/// real MiniLM encoder.
struct Banking77: Sendable {
    let training: [TeacherExchange]
    let unseen: [TeacherExchange]
    let unseenGold: [String]

    static let shared = Task { await onOwnThread { Result { try Banking77() } } }

    static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    private struct Row: Decodable {
        struct Alternative: Decodable {
            let intent: String
            let probability: Double

            init(from decoder: any Decoder) throws {
                var container = try decoder.unkeyedContainer()
                intent = try container.decode(String.self)
                probability = try container.decode(Double.self)
            }
        }

        let text: String
        let gold: String
        let top: [Alternative]
    }

    private init() throws {
        let file = Self.packageRoot.appendingPathComponent("../shared/data/banking77/teacher_soft.jsonl")
        var rows = try String(contentsOf: file, encoding: .utf8).split(separator: "\n").map {
            try JSONDecoder().decode(Row.self, from: Data($0.utf8))
        }
        var generator = SplitMix64(seed: 1)
        for i in stride(from: rows.count - 1, to: 0, by: -1) { rows.swapAt(i, Int(generator.next() % UInt64(i + 1))) }
        rows = Array(rows.prefix(4000))

        let modelDirectory = ProcessInfo.processInfo.environment["DISTILL_MODEL_DIR"].map(URL.init(fileURLWithPath:))
            ?? Self.packageRoot.appendingPathComponent("models/all-MiniLM-L6-v2")
        let embeddings = try BertEncoder(modelDirectory: modelDirectory).embed(rows.map(\.text))
        // The teacher's answer is its top-1; its top_logprobs are the top-5 as log-probabilities.
        let exchanges = zip(rows, embeddings).map { row, embedding in
            TeacherExchange(
                embedding: embedding, answer: row.top[0].intent,
                alternatives: row.top.map { (text: $0.intent, logprob: log($0.probability)) })
        }
        training = Array(exchanges.prefix(3000))
        unseen = Array(exchanges[3000...])
        unseenGold = rows[3000...].map(\.gold)
    }

    /// The same exchanges with the teacher's answers only.
    var hardTraining: [TeacherExchange] { training.map { TeacherExchange(embedding: $0.embedding, answer: $0.answer) } }
}

/// Students trained once per test process and shared by the tests, each on a thread of its own.
enum Banking77Students {
    static let soft = trained { try StudentTrainer.train($0.training) }
    static let hard = trained { try StudentTrainer.train($0.hardTraining) }
    /// Trained on the 300 oldest answers only, with the same 600 newest as its holdout.
    static let few = trained {
        try StudentTrainer.train(training: Array($0.training.prefix(300)), holdout: Array($0.training.suffix(600)))
    }
    /// Trained on answers of which two in five were replaced by another class's, with the true 600 newest as
    /// its holdout.
    static let corrupted = trained { data in
        var training = data.hardTraining
        let answers = Array(Set(training.map(\.answer))).sorted()
        var generator = SplitMix64(seed: 2)
        for index in 0..<2400 where generator.nextUnit() < 0.4 {
            training[index].answer = answers[Int(generator.next() % UInt64(answers.count))]
        }
        return try StudentTrainer.train(training)
    }

    private static func trained(
        _ train: @escaping @Sendable (Banking77) throws -> TrainingResult
    ) -> Task<Result<TrainingResult, any Error>, Never> {
        Task {
            let data = await Banking77.shared.value
            return await onOwnThread { Result { try train(data.get()) } }
        }
    }
}

@Suite(.serialized) struct Banking77Tests {
    struct Numbers: CustomStringConvertible {
        var agreement: Double
        var acceptedAgreement: Double
        var coverage: Double
        var goldAccuracy: Double

        init<Network>(_ student: Student<Network>, on data: Banking77) {
            let metrics = student.evaluate(data.unseen)
            agreement = metrics.agreement
            acceptedAgreement = metrics.acceptedAgreement
            coverage = metrics.coverage
            let right = zip(data.unseen, data.unseenGold).count { student.predict($0.embedding).answer == $1 }
            goldAccuracy = Double(right) / Double(data.unseen.count)
        }

        var description: String {
            String(
                format: "agreement %.1f%%, at τ %.1f%% with coverage %.1f%%, accuracy against gold %.1f%%",
                100 * agreement, 100 * acceptedAgreement, 100 * coverage, 100 * goldAccuracy)
        }
    }

    @Test func aSoftLabelStudentAgreesWithTheTeacherOnUnseenQueries() async throws {
        let data = try await Banking77.shared.value.get()
        let result = try await Banking77Students.soft.value.get()
        let int8 = Numbers(result.model, on: data), float = Numbers(result.floatModel, on: data)
        let report = result.model.report
        print("Banking77, soft labels, 3,000 answers, 1,000 unseen queries")
        print("  int8:  \(int8)")
        print("  float: \(float)")
        print(String(
            format: "  τ %.3f, temperature %.3f, holdout ECE %.4f → %.4f, %d epochs (best %d), %d soft targets",
            result.model.threshold ?? .nan, result.model.temperature, report.calibrationErrorBefore,
            report.calibrationErrorAfter, report.epochs, report.bestEpoch, report.softTargetCount))
        #expect(result.model.classes.count == 77)
        // Every training answer that is a class has a soft target (a few rare intents are not classes).
        let classAnswers = data.training.prefix(2400).count { result.model.classes.index(of: $0.answer) != nil }
        #expect(report.softTargetCount == classAnswers, "\(report.softTargetCount) soft targets, \(classAnswers) class answers")
        #expect(classAnswers > 2390)
        #expect(int8.agreement >= 0.85)
        #expect(int8.acceptedAgreement >= 0.95)
        #expect(int8.coverage >= 0.5)
        #expect(abs(int8.agreement - float.agreement) <= 0.01)
        #expect(abs(int8.acceptedAgreement - float.acceptedAgreement) <= 0.01)
        #expect(report.calibrationErrorAfter <= report.calibrationErrorBefore)
    }

    @Test func softLabelsAgainstHardLabelsOnTheSameSplit() async throws {
        let data = try await Banking77.shared.value.get()
        let soft = Numbers(try await Banking77Students.soft.value.get().model, on: data)
        let hard = Numbers(try await Banking77Students.hard.value.get().model, on: data)
        print("Banking77, int8, the same 3,000 answers and 1,000 unseen queries")
        print("  soft labels: \(soft)")
        print("  hard labels: \(hard)")
        #expect(try await Banking77Students.hard.value.get().model.report.softTargetCount == 0)
        #expect(hard.agreement >= 0.85)
        #expect(soft.agreement > hard.agreement)
    }

    @Test func theGateRejectsWorseCandidatesAndPromotesABetterOne() async throws {
        let data = try await Banking77.shared.value.get()
        let holdout = data.training[2400...]
        let good = try await Banking77Students.soft.value.get(), few = try await Banking77Students.few.value.get()
        let corrupted = try await Banking77Students.corrupted.value.get()
        // A candidate's own report is its evaluation on the holdout it was trained against.
        #expect(few.model.evaluate(holdout) == few.model.report.holdout)
        #expect(good.model.evaluate(holdout) == good.model.report.holdout)
        let gate = PromotionGate()
        print("active student of 3,000 answers: \(good.model.evaluate(holdout))")
        for worse in [few, corrupted] {
            let decision = gate.decide(candidate: worse.model.outcomes(holdout), active: good.model.outcomes(holdout))
            print("worse candidate, \(worse.model.evaluate(holdout)): \(decision)")
            #expect(!decision.promotes)
            let reverse = gate.decide(candidate: good.model.outcomes(holdout), active: worse.model.outcomes(holdout))
            print("better candidate: \(reverse)")
            #expect(reverse.promotes)
        }
    }
}
