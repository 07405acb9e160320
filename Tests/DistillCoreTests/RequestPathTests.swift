import DistillAPI
import Foundation
import SQLiteStore
import Storage
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
