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
        let store = try SQLiteStore(path: Self.temporaryPath())
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

    static func temporaryPath() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("distill-path-\(UUID().uuidString)/distill.sqlite").path
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
        func seesWhole(_ text: String) -> Bool { true }
    }

    /// A request path whose scope has a student serving, trained on three clusters of `StudentsTests`, over the store
    /// at `path` (the version is stored once); with the verified cache in front when `cache`.
    func serviceWithStudent(
        teacher: ScriptedTeacher, embedder: TableEmbedder, auditShare: Double = 0.02, cache: Bool = false,
        path: String = RequestPathTests.temporaryPath()
    ) async throws -> (service: CompletionService, students: Students, store: SQLiteStore, model: StudentModel) {
        let store = try SQLiteStore(path: path)
        let model = try StudentTrainer.train(StudentsTests.exchanges(answers: ["a", "b", "c"])).model
        if try await store.currentStudentVersions().isEmpty {
            let holdout = HoldoutCounts(model.report.holdout)
            let versionMetrics = StudentVersionMetrics(
                embeddingModel: embedder.identity.key, classes: 3, threshold: model.threshold.map(Double.init),
                temperature: Double(model.temperature), trainingRows: 0, softTargetRows: 0, epochs: 1, bestEpoch: 1,
                calibrationErrorBefore: 0, calibrationErrorAfter: 0, holdout: holdout, floatHoldout: holdout, trafficCoverage: nil,
                trafficAgreement: nil, incumbent: nil, decision: "test")
            _ = try await store.addStudentVersion(
                StudentVersionRecord(
                    scope: Scope(of: try request("known"), tenant: tenant).key, createdAt: Date(), status: .active,
                    model: model.encoded(), metrics: String(decoding: try JSONEncoder().encode(versionMetrics), as: UTF8.self),
                    trainedThrough: 0, trainingSeconds: 0))
        }
        let (clock, metrics) = (ManualClock(), RecordingMetrics())
        var settings = StudentSettings()
        settings.auditShare = auditShare
        let students = try await Students.open(
            store: store, configuration: settings, embeddingModel: embedder.identity.key, metrics: metrics, logger: quietLogger)
        let semanticCache = cache
            ? try await SemanticCache.open(
                store: store, settings: CacheSettings(), index: IndexSettings(), embedder: embedder, clock: clock,
                metrics: metrics, logger: quietLogger)
            : nil
        let service = CompletionService(
            store: store, teacher: teacher, cache: semanticCache, students: students, embedder: embedder, temperatureCeiling: 1,
            clock: clock, metrics: metrics, logger: quietLogger)
        return (service, students, store, model)
    }

    let tenant = "t"

    @Test func aNovelInputIsNotAnsweredByTheStudent() async throws {
        let embedder = TableEmbedder(table: [
            "known": StudentsTests.vector(cluster: 0), "unlike anything learned": StudentsTests.novel,
        ])
        let teacher = ScriptedTeacher(answer: "d")
        let (service, students, store, model) = try await serviceWithStudent(teacher: teacher, embedder: embedder)
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

    @Test func anAuditTheTeacherCannotAnswerServesTheStudentsAnswer() async throws {
        let embedder = TableEmbedder(table: ["known": StudentsTests.vector(cluster: 0), "unlike anything learned": StudentsTests.novel])
        let teacher = ScriptedTeacher(failure: .timedOut)
        // Every confident answer is audited: each goes to the teacher, which fails.
        let (service, _, store, _) = try await serviceWithStudent(teacher: teacher, embedder: embedder, auditShare: 1)
        let info = RequestInfo(requestID: "r1", tenant: tenant)
        let audited = try await service.complete(try request("known"), info: info)
        #expect(audited.source == .student && teacher.callCount == 1)
        let streamed = try await service.stream(try request("known"), info: info)
        #expect(streamed.source == .student && teacher.callCount == 2)
        // A request the student would not answer gets the teacher's error.
        await #expect(throws: DistillError.teacher(.timedOut)) {
            try await service.complete(try request("unlike anything learned"), info: info)
        }
        #expect(try await store.teacherLogCount() == 0)
    }

    @Test(arguments: [false, true]) func anExplorationTheTeacherCannotAnswerServesTheStudentsAnswer(streamed: Bool) async throws {
        let reworded = StudentsTests.vector(cluster: 0).enumerated().map { $0.offset == 7 ? 0.1 : $0.element }
        let embedder = TableEmbedder(table: ["known": StudentsTests.vector(cluster: 0), "known, reworded": reworded])
        let path = Self.temporaryPath()
        // Audited, so that the teacher answers "known" and the cache holds its answer.
        let answering = try await serviceWithStudent(
            teacher: ScriptedTeacher(answer: "a"), embedder: embedder, auditShare: 1, cache: true, path: path)
        let info = RequestInfo(requestID: "r", tenant: tenant)
        #expect(try await answering.service.complete(try request("known"), info: info).source == .teacher)
        try answering.store.close()

        // A scope that has learned nothing explores its first paraphrase: the teacher's to answer, and it fails.
        let teacher = ScriptedTeacher(failure: .timedOut)
        let world = try await serviceWithStudent(teacher: teacher, embedder: embedder, cache: true, path: path)
        // The student would not audit it (its content key is above the raised share): the teacher call is the cache's.
        try #require(Students.auditKey(reworded) >= 0.1)
        let paraphrase = try request("known, reworded")
        let (source, similarity): (AnswerSource, Float?)
        if streamed {
            let stream = try await world.service.stream(paraphrase, info: info)
            (source, similarity) = (stream.source, stream.similarity)
        } else {
            let response = try await world.service.complete(paraphrase, info: info)
            (source, similarity) = (response.source, response.similarity)
        }
        #expect(source == .student && teacher.callCount == 1, "explored, the teacher failed, and the confident student answered")
        #expect((similarity ?? 0) > 0.99, "the cached answer to \"known\" was the candidate")
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

/// The verified cache on the request path: what it cannot judge goes to the teacher and teaches it;
/// what it has learned survives a restart.
@Suite struct VerifiedCachePathTests {
    struct World {
        let service: CompletionService
        let cache: SemanticCache
        let store: SQLiteStore
    }

    static func open(_ path: String, teacher: ScriptedTeacher, embedder: any Embedder = sharedEmbedder) async throws -> World {
        let store = try SQLiteStore(path: path)
        let cache = try await SemanticCache.open(
            store: store, settings: CacheSettings(), index: IndexSettings(), embedder: embedder, clock: ManualClock(),
            metrics: RecordingMetrics(), logger: quietLogger)
        let service = CompletionService(
            store: store, teacher: teacher, cache: cache, students: nil, embedder: embedder, temperatureCeiling: 1,
            clock: ManualClock(), metrics: RecordingMetrics(), logger: quietLogger)
        return World(service: service, cache: cache, store: store)
    }

    static func temporaryPath() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("distill-verified-\(UUID().uuidString)/distill.sqlite").path
    }

    func ask(_ world: World, _ text: String) async throws -> CompletionResponse {
        let request = try ChatRequest.parse(Data(#"{"model":"m","messages":[{"role":"user","content":"\#(text)"}]}"#.utf8))
        return try await world.service.complete(request, info: RequestInfo(requestID: "r", tenant: "t"))
    }

    func onlyScope(_ world: World) throws -> String { try #require(world.cache.scopes().first?.scope) }

    @Test func aParaphraseTheCacheCannotJudgeYetGoesToTheTeacherAndTeachesIt() async throws {
        let teacher = ScriptedTeacher(answer: "card_arrival")
        let world = try await Self.open(Self.temporaryPath(), teacher: teacher)
        #expect(try await ask(world, "Where is my card?").source == .teacher)
        let scope = try onlyScope(world)
        #expect(world.cache.verification(for: scope).lessons == 0)

        // A new scope has learned nothing: the close paraphrase is explored, not served.
        let paraphrase = try await ask(world, "Where's my card?")
        #expect(paraphrase.source == .teacher && (paraphrase.similarity ?? 0) > 0.85, "x-distill-similarity still reports the candidate")
        #expect(teacher.callCount == 2)
        let learned = world.cache.verification(for: scope)
        #expect(learned.explorations == 1 && learned.lessons == 1 && learned.wrongLessons == 0 && learned.hits == 0)
        #expect(learned.maxError == CacheSettings().maxError)
    }

    @Test func aNegationNearMissIsNotServedWhereAParaphraseIs() async throws {
        let teacher = ScriptedTeacher(answers: [
            "Is my card payment pending?": "Yes: card payments stay pending for up to 3 days.",
            "Is my card payment not pending?": "It is not pending any more: it has completed.",
        ])
        let world = try await Self.open(Self.temporaryPath(), teacher: teacher)
        _ = try await ask(world, "Is my card payment pending?")
        let scope = try onlyScope(world)
        // A bound loose enough that the prior alone serves a near-identical paraphrase at once.
        try await world.cache.configure(scope: scope, similarityThreshold: nil, ttlSeconds: nil, maxError: 0.2)
        let paraphrase = try await ask(world, "is my card payment pending")
        #expect(paraphrase.source == .cache && (paraphrase.similarity ?? 1) < 1)
        #expect(world.cache.verification(for: scope).hits == 1)

        let negated = try await ask(world, "Is my card payment not pending?")
        #expect(negated.source == .teacher, "a negation is the difference between near-identical texts")
        #expect((negated.similarity ?? 0) > 0.95, "though its embedding is as close as a paraphrase's")
        #expect(try JSONValue.parse(negated.body)["choices"]?.arrayValue?.first?["message"]?["content"]?.stringValue == teacher.answers["Is my card payment not pending?"])
        #expect(world.cache.verification(for: scope).wrongLessons == 1, "the teacher's answer differed from the cached one")
        #expect(teacher.callCount == 2)
    }

    @Test(arguments: [false, true]) func anAuditTheTeacherCannotAnswerServesTheCachedAnswer(streamed: Bool) async throws {
        // Vectors whose signs draw an audit (the top 2% of the unit interval), near-identical to the cached question's.
        func vector(signs: Int, spread: Float) -> [Float] {
            (0..<8).map { index in (signs >> index & 1 == 1 ? -1 : 1) * (index == 0 ? 1 : index == 1 ? spread : 0.05) }
        }
        let signs = try #require((0..<256).first { 1 - Students.auditKey(vector(signs: $0, spread: 0.05)) < 0.02 })
        let embedder = RequestPathTests.TableEmbedder(table: [
            "Where is my card?": vector(signs: signs, spread: 0.05), "Where is my card": vector(signs: signs, spread: 0.06),
            "How do I close my account?": vector(signs: ~signs, spread: 0.05),
        ])
        let path = Self.temporaryPath()
        let answering = try await Self.open(path, teacher: ScriptedTeacher(answer: "card_arrival"), embedder: embedder)
        _ = try await ask(answering, "Where is my card?")
        // A bound loose enough that the prior alone serves the paraphrase: it would, but for the audit.
        try await answering.cache.configure(scope: try onlyScope(answering), similarityThreshold: nil, ttlSeconds: nil, maxError: 0.2)
        try answering.store.close()

        let teacher = ScriptedTeacher(failure: .timedOut)
        let world = try await Self.open(path, teacher: teacher, embedder: embedder)
        let request = try ChatRequest.parse(Data(#"{"model":"m","messages":[{"role":"user","content":"Where is my card"}]}"#.utf8))
        let info = RequestInfo(requestID: "r", tenant: "t")
        let source = streamed
            ? try await world.service.stream(request, info: info).source
            : try await world.service.complete(request, info: info).source
        #expect(source == .cache && teacher.callCount == 1, "audited, the teacher failed, and the cached answer served")
        #expect(world.cache.verification(for: try onlyScope(world)).audits == 1)
        // A request the cache would not serve gets the teacher's error.
        await #expect(throws: DistillError.teacher(.timedOut)) { try await ask(world, "How do I close my account?") }
    }

    @Test func whatTheCacheLearnedSurvivesARestart() async throws {
        let path = Self.temporaryPath()
        let teacher = ScriptedTeacher(answer: "card_arrival")
        let world = try await Self.open(path, teacher: teacher)
        _ = try await ask(world, "Where is my card?")
        _ = try await ask(world, "Where's my card?")
        _ = try await ask(world, "Has my card been sent yet?")
        let scope = try onlyScope(world)
        try await world.cache.configure(scope: scope, similarityThreshold: nil, ttlSeconds: nil, maxError: 0.03)
        let learned = world.cache.verification(for: scope)
        #expect(learned.lessons >= 1)
        try await world.cache.flushBeliefs()
        try world.store.close()

        let reopened = try await Self.open(path, teacher: teacher)
        #expect(reopened.cache.verification(for: scope) == learned)
        #expect(reopened.cache.settings(for: scope).maxError == 0.03)
        let stored = try await reopened.store.cacheBeliefs()
        #expect(stored.contains { $0.entryID != nil }, "the candidate entries' beliefs too")
    }
}
