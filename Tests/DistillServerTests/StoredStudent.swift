import DistillAPI
import Foundation
import SeededRandom
import Storage
import Student

/// A small student trained on three separable clusters in 8 dimensions, stored as a version: for
/// the routes and metrics that need one. It never decides a request here.
enum StoredStudent {
    static func add(
        to store: any DistillStore, scope: String, embeddingModel: String, status: StudentVersionRecord.Status
    ) async throws -> Int64 {
        var generator = SplitMix64(seed: 42)
        let answers = ["a", "b", "c"]
        let exchanges = (0..<600).map { i in
            let cluster = i % answers.count
            let embedding = (0..<8).map { ($0 == cluster ? 1 : 0) + Float.random(in: -0.1...0.1, using: &generator) }
            return TeacherExchange(embedding: embedding, answer: answers[cluster])
        }
        let model = try StudentTrainer.train(exchanges).model
        let holdout = HoldoutCounts(count: 100, agreeing: 100, accepted: 100, agreeingAccepted: 100)
        let metrics = StudentVersionMetrics(
            embeddingModel: embeddingModel, classes: model.classes.count, threshold: model.threshold.map(Double.init),
            temperature: Double(model.temperature), trainingRows: exchanges.count, softTargetRows: 0, epochs: 1,
            bestEpoch: 1, calibrationErrorBefore: 0, calibrationErrorAfter: 0, holdout: holdout, floatHoldout: holdout,
            trafficCoverage: nil, trafficAgreement: nil, incumbent: nil, decision: "test")
        return try await store.addStudentVersion(
            StudentVersionRecord(
                scope: scope, createdAt: Date(), status: status, model: model.encoded(),
                metrics: String(decoding: try JSONEncoder().encode(metrics), as: UTF8.self), trainedThrough: 1, trainingSeconds: 0))
    }
}
