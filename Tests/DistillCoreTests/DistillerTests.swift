import DistillAPI
import Embedding
import Foundation
import SQLiteStore
import SeededRandom
import Storage
import Student
import Synchronization
import Testing

@testable import DistillCore

/// The distiller's queue and run phases, with a trainer the test holds in the middle of training.
@Suite struct DistillerTests {
    static let scope = String(repeating: "cd", count: 32)

    /// An embedder that is never asked: every logged row already has its vector.
    struct LoggedVectorsOnly: Embedder {
        let identity = EmbeddingModelIdentity(name: "test", weightsSHA256: "0", dimension: 8)
        func embed(_ texts: [String]) async throws -> [[Float]] {
            Issue.record("the distiller embedded rows that had vectors")
            return texts.map { _ in [Float](repeating: 0, count: 8) }
        }
        func seesWhole(_ text: String) -> Bool { true }
    }

    /// A trainer that reports when it starts, waits until released, then trains for real (small data).
    final class HeldTrainer: Sendable {
        let started: AsyncStream<Void>
        private let startedContinuation: AsyncStream<Void>.Continuation
        private let release = DispatchSemaphore(value: 0)
        private let failure: StudentTrainingError?

        init(failing failure: StudentTrainingError? = nil) {
            (started, startedContinuation) = AsyncStream.makeStream()
            self.failure = failure
        }

        func letItFinish() { release.signal() }

        var train: Distiller.Trainer {
            { [self] training, holdout, configuration, shouldStop throws(StudentTrainingError) in
                startedContinuation.yield()
                release.wait()
                if let failure { throw failure }
                return try StudentTrainer.train(training: training, holdout: holdout, configuration: configuration, shouldStop: shouldStop)
            }
        }
    }

    /// A store holding `rows` teacher answers of one scope: three well-separated clusters.
    static func store(rows: Int) async throws -> SQLiteStore {
        let store = try SQLiteStore(
            path: FileManager.default.temporaryDirectory.appendingPathComponent("distill-distiller-\(UUID().uuidString)/distill.sqlite").path)
        var generator = SplitMix64(seed: 3)
        for i in 0..<rows {
            let cluster = i % 3
            let vector = (0..<8).map { $0 == cluster ? 1 + Float.random(in: -0.1...0.1, using: &generator) : Float.random(in: -0.1...0.1, using: &generator) }
            _ = try await store.appendTeacherExchange(
                TeacherLogRecord(
                    createdAt: Date(timeIntervalSince1970: 1_800_000_000), requestID: "r\(i)", scope: scope, model: "m",
                    messages: "[]", parameters: "{}", prompt: "question \(i)", answer: ["a", "b", "c"][cluster], topLogprobs: nil,
                    promptTokens: nil, completionTokens: nil, latencyMilliseconds: 1, streamed: false, vector: vector),
                cacheEntry: nil)
        }
        return store
    }

    func distiller(store: SQLiteStore, trainer: HeldTrainer, metrics: RecordingMetrics) async throws -> (Distiller, Students) {
        let students = try await Students.open(
            store: store, configuration: StudentSettings(), embeddingModel: LoggedVectorsOnly().identity.key, metrics: metrics,
            logger: quietLogger)
        var settings = DistillSettings()
        settings.enabled = false  // manual runs only: the test decides when
        settings.minRows = 100
        let distiller = Distiller(
            store: store, embedder: LoggedVectorsOnly(), students: students, settings: settings, clock: ManualClock(),
            metrics: metrics, trainer: trainer.train, logger: quietLogger)
        return (distiller, students)
    }

    /// Waits for the distiller's status to satisfy `condition` (bounded: a stuck run fails the test).
    func awaitStatus(_ distiller: Distiller, _ condition: (DistillStatus) -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(60)
        while !condition(distiller.status()) {
            guard ContinuousClock.now < deadline else { throw CancellationError() }
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    @Test func aRunIsQueuedOnceThenLoadsTrainsEvaluatesAndPromotes() async throws {
        let store = try await Self.store(rows: 300)
        let trainer = HeldTrainer()
        let metrics = RecordingMetrics()
        let (distiller, students) = try await distiller(store: store, trainer: trainer, metrics: metrics)
        let first = try await distiller.requestRuns(scope: nil)
        let again = try await distiller.requestRuns(scope: Self.scope)
        #expect(first.map(\.phase) == [.queued] && first.map(\.trigger) == [.manual])
        #expect(again.map(\.id) == first.map(\.id), "a queued scope is not queued twice")

        let service = Task { await distiller.run() }
        var started = trainer.started.makeAsyncIterator()
        _ = await started.next()
        let training = try #require(distiller.status().runs.first)
        #expect(training.phase == .training && training.rows == 300 && training.startedAt != nil)
        #expect(students.active(scope: Self.scope) == nil, "nothing serves before the run has finished")

        trainer.letItFinish()
        try await awaitStatus(distiller) { $0.runs.first?.isFinished == true }
        let finished = try #require(distiller.status().runs.first)
        #expect(finished.outcome == .promoted && finished.version != nil, "\(finished)")
        #expect(students.active(scope: Self.scope)?.version == finished.version)
        #expect(try await store.currentStudentVersions().map(\.id) == [finished.version])
        #expect(metrics.snapshot.runs == [.promoted: 1])
        service.cancel()
    }

    @Test func aFailedTrainingIsRecordedAndStoresNothing() async throws {
        let store = try await Self.store(rows: 300)
        let trainer = HeldTrainer(failing: .notEnoughExchanges(0))
        let metrics = RecordingMetrics()
        let (distiller, students) = try await distiller(store: store, trainer: trainer, metrics: metrics)
        _ = try await distiller.requestRuns(scope: Self.scope)
        let service = Task { await distiller.run() }
        trainer.letItFinish()
        try await awaitStatus(distiller) { $0.runs.first?.isFinished == true }
        let finished = try #require(distiller.status().runs.first)
        #expect(finished.outcome == .failed && finished.version == nil)
        #expect(finished.reason?.isEmpty == false)
        #expect(students.active(scope: Self.scope) == nil)
        #expect(try await store.studentVersions(scope: nil).isEmpty)
        #expect(metrics.snapshot.runs == [.failed: 1])
        service.cancel()
    }

    /// Appends `count` rows of the clusters' answers; far from them when `novel`.
    static func append(rows count: Int, novel: Bool, to store: SQLiteStore) async throws {
        for i in 0..<count {
            let vector: [Float] = (0..<8).map { novel ? ($0 == 4 ? 1 : 0) : ($0 == i % 3 ? 1 : 0) }
            _ = try await store.appendTeacherExchange(
                TeacherLogRecord(
                    createdAt: Date(timeIntervalSince1970: 1_800_000_000), requestID: "n\(i)", scope: scope, model: "m",
                    messages: "[]", parameters: "{}", prompt: "new question \(i)", answer: novel ? "d" : ["a", "b", "c"][i % 3],
                    topLogprobs: nil, promptTokens: nil, completionTokens: nil, latencyMilliseconds: 1, streamed: false,
                    vector: vector),
                cacheEntry: nil)
        }
    }

    @Test func shiftedTrafficMakesTheScopeDueSooner() async throws {
        let store = try await Self.store(rows: 600)
        let trainer = HeldTrainer()
        let metrics = RecordingMetrics()
        let students = try await Students.open(
            store: store, configuration: StudentSettings(), embeddingModel: LoggedVectorsOnly().identity.key, metrics: metrics,
            logger: quietLogger)
        var settings = DistillSettings()
        settings.enabled = false  // the test decides when the distiller looks
        (settings.minRows, settings.minNewRows) = (100, 100)
        let distiller = Distiller(
            store: store, embedder: LoggedVectorsOnly(), students: students, settings: settings, clock: ManualClock(),
            metrics: metrics, trainer: trainer.train, logger: quietLogger)
        _ = try await distiller.requestRuns(scope: Self.scope)
        let service = Task { await distiller.run() }
        trainer.letItFinish()
        try await awaitStatus(distiller) { $0.runs.first?.isFinished == true }
        service.cancel()
        try #require(distiller.status().runs.first?.outcome == .promoted)
        try #require(students.active(scope: Self.scope)?.model.threshold != nil)

        // 60 new answers: short of the regular step (100), past half of it.
        try await Self.append(rows: 60, novel: false, to: store)
        await distiller.enqueueDueScopes()
        #expect(distiller.status().runs.count == 1, "not due on the regular step")

        // The student's requests turn novel: the shift rule alarms, and the scope is due at half the step.
        for _ in 0..<60 {
            let decision = try #require(students.decide(scope: Self.scope, vector: (0..<8).map { $0 == 0 || $0 == 4 ? 1 : 0 }))
            try #require(decision.prediction.isConfident, "\(decision.prediction)")
        }
        try #require(students.shift(scope: Self.scope) != nil)
        await distiller.enqueueDueScopes()
        let runs = distiller.status().runs
        #expect(runs.count == 2 && runs.first?.trigger == .shift && runs.first?.phase == .queued, "\(runs)")
    }

    @Test func aScopeWithoutAnswersOrWithTooFewIsRefused() async throws {
        let store = try await Self.store(rows: 50)
        let (distiller, _) = try await distiller(store: store, trainer: HeldTrainer(), metrics: RecordingMetrics())
        await #expect(throws: DistillError.notEnoughAnswers(minRows: 100)) { try await distiller.requestRuns(scope: nil) }
        await #expect(throws: DistillError.noTeacherAnswers) { try await distiller.requestRuns(scope: String(repeating: "ef", count: 32)) }
    }
}
