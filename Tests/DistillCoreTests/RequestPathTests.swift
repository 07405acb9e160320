import DistillAPI
import Embedding
import Foundation
import SQLiteStore
import Storage
import Student
import Teacher
import Testing

@testable import DistillCore

/// The request path against a scripted teacher: no network, only the domain and its store.
@Suite struct RequestPathTests {
    func service(teacher: ScriptedTeacher, cache: Bool) async throws -> (CompletionService, SQLiteStore) {
        let store = try SQLiteStore(
            path: FileManager.default.temporaryDirectory.appendingPathComponent("distill-path-\(UUID().uuidString)/distill.sqlite").path)
        let clock = ManualClock()
        let metrics = RecordingMetrics()
        let semanticCache = cache
            ? try await SemanticCache.open(
                store: store, settings: CacheSettings(), index: IndexSettings(), embedder: sharedEmbedder, clock: clock,
                metrics: metrics, logger: quietLogger)
            : nil
        let service = CompletionService(
            store: store, teacher: teacher, cache: semanticCache, students: nil, embedder: sharedEmbedder,
            temperatureCeiling: 1, clock: clock, metrics: metrics, logger: quietLogger)
        return (service, store)
    }

    func request(_ text: String) throws -> ChatRequest {
        try ChatRequest.parse(Data(#"{"model":"m","messages":[{"role":"user","content":"\#(text)"}]}"#.utf8))
    }

    @Test func aRepeatedQuestionIsAnsweredFromTheCacheAndTheTeacherIsAskedOnce() async throws {
        let teacher = ScriptedTeacher(answer: "card_arrival")
        let (service, store) = try await service(teacher: teacher, cache: true)
        let info = RequestInfo(requestID: "r1", tenant: "t")
        #expect(try await service.complete(try request("Where is my card?"), info: info).source == .teacher)
        let again = try await service.complete(try request("where is my  card?"), info: info)
        #expect(again.source == .cache && again.similarity == 1)
        #expect(teacher.callCount == 1)
        #expect(try await store.teacherLogCount() == 1)
    }

    @Test func aFailingTeacherLogsNothingAndTheErrorIsTheTeachers() async throws {
        let teacher = ScriptedTeacher(failure: .timedOut)
        let (service, store) = try await service(teacher: teacher, cache: false)
        await #expect(throws: DistillError.teacher(.timedOut)) {
            try await service.complete(try request("Where is my card?"), info: RequestInfo(requestID: "r1", tenant: "t"))
        }
        #expect(try await store.teacherLogCount() == 0)
        #expect(try await store.cacheEntryCount() == 0)
    }

    /// Embeds each text as the vector a table gives it.
    struct TableEmbedder: Embedder {
        let identity = EmbeddingModelIdentity(name: "table", weightsSHA256: "0", dimension: 8)
        let table: [String: [Float]]
        func embed(_ texts: [String]) async throws -> [[Float]] { texts.map { table[$0]! } }
    }

    @Test func aNovelInputIsNotAnsweredByTheStudent() async throws {
        let store = try SQLiteStore(
            path: FileManager.default.temporaryDirectory.appendingPathComponent("distill-path-\(UUID().uuidString)/distill.sqlite").path)
        let embedder = TableEmbedder(table: [
            "known": StudentsTests.vector(cluster: 0), "unlike anything learned": StudentsTests.novel,
        ])
        let model = try StudentTrainer.train(StudentsTests.exchanges(answers: ["a", "b", "c"])).model
        let holdout = HoldoutCounts(model.report.holdout)
        let versionMetrics = StudentVersionMetrics(
            embeddingModel: embedder.identity.key, classes: 3, threshold: model.threshold.map(Double.init),
            temperature: Double(model.temperature), trainingRows: 0, softTargetRows: 0, epochs: 1, bestEpoch: 1,
            calibrationErrorBefore: 0, calibrationErrorAfter: 0, holdout: holdout, floatHoldout: holdout, trafficCoverage: nil,
            trafficAgreement: nil, incumbent: nil, decision: "test")
        let tenant = "t"
        let scope = Scope(of: try request("known"), tenant: tenant).key
        _ = try await store.addStudentVersion(
            StudentVersionRecord(
                scope: scope, createdAt: Date(), status: .active, model: model.encoded(),
                metrics: String(decoding: try JSONEncoder().encode(versionMetrics), as: UTF8.self), trainedThrough: 0,
                trainingSeconds: 0))
        let metrics = RecordingMetrics()
        let students = try await Students.open(
            store: store, configuration: StudentSettings(), embeddingModel: embedder.identity.key, metrics: metrics,
            logger: quietLogger)
        let teacher = ScriptedTeacher(answer: "d")
        let service = CompletionService(
            store: store, teacher: teacher, cache: nil, students: students, embedder: embedder, temperatureCeiling: 1,
            clock: ManualClock(), metrics: metrics, logger: quietLogger)
        // The known request's vector is not picked for an audit (its content key is above the raised share).
        try #require(Students.auditKey(StudentsTests.vector(cluster: 0)) >= 0.1)
        let known = try await service.complete(try request("known"), info: RequestInfo(requestID: "r1", tenant: tenant))
        #expect(known.source == .student && teacher.callCount == 0)

        let novel = try await service.complete(
            try request("unlike anything learned"), info: RequestInfo(requestID: "r2", tenant: tenant))
        #expect(novel.source == .teacher && teacher.callCount == 1, "confident (\(novel.confidence ?? 0)) but novel")
        #expect((novel.confidence ?? 0) >= Float(try #require(model.threshold)))
        #expect(students.status().scopes.first?.novelAbstentions == 1)
        #expect(try await store.teacherLogCount() == 1, "its answer is logged, to be learned")
    }

    @Test func aStreamedTeacherAnswerIsLoggedBeforeDone() async throws {
        let (service, store) = try await service(teacher: ScriptedTeacher(answer: "top_up"), cache: true)
        let stream = try await service.stream(try request("How do I top up?"), info: RequestInfo(requestID: "r1", tenant: "t"))
        var rowsAtDone: Int64?
        await stream.run { sent in
            if case .event(let event) = sent, event.isDone { rowsAtDone = try await store.teacherLogCount() }
        }
        #expect(rowsAtDone == 1)
        #expect(try await store.teacherLog(after: 0, limit: 1).first?.streamed == true)
    }
}
