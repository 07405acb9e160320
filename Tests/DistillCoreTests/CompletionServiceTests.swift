import DistillAPI
import Foundation
import Logging
import SQLiteStore
import Storage
import Teacher
import TeacherSimulator
import Testing

@testable import DistillCore

@Suite struct CompletionServiceTests {
    static let dataset = TeacherDataset(entries: [
        .init(text: "where is my card", gold: nil, answer: "card_arrival", top: [("card_arrival", 0.8), ("lost_or_stolen_card", 0.2)])
    ])
    static let quiet = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
    let info = RequestInfo(requestID: "req-1", tenant: "t")

    func request(_ extra: String = "") throws -> ChatRequest {
        try ChatRequest.parse(Data(#"{"model":"m","messages":[{"role":"system","content":"classify"},{"role":"user","content":"where is my card"}]\#(extra)}"#.utf8))
    }

    /// A request path over a fresh store and a simulator on loopback.
    func withService(faults: SimulatorFaults = SimulatorFaults(), _ body: (CompletionService, SQLiteStore, TeacherSimulator) async throws -> Void) async throws {
        var options = SimulatorOptions()
        options.faults = faults
        let simulator = TeacherSimulator(dataset: Self.dataset, options: options)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("distill-core-\(UUID().uuidString)")
        let store = try SQLiteStore(path: directory.appendingPathComponent("distill.sqlite").path)
        try await simulator.serve { baseURL in
            let teacher = TeacherClient(
                configuration: TeacherConfiguration(baseURL: baseURL, maxAttempts: 2, backoffInitial: .milliseconds(1), topLogprobs: 2),
                logger: Self.quiet)
            let service = CompletionService(
                store: store, teacher: teacher, cache: nil, students: nil, embedder: nil, temperatureCeiling: 1, clock: SystemClock(),
                metrics: RecordingMetrics(),
                logger: Self.quiet)
            try await body(service, store, simulator)
            try await teacher.shutdown()
        }
    }

    @Test func aTeacherAnswerIsLoggedWithEverythingTheStudentNeeds() async throws {
        try await withService { service, store, _ in
            let response = try await service.complete(try request(#","max_tokens":8"#), info: info)
            #expect(response.source == .teacher)
            let body = try JSONValue.parse(response.body)
            #expect(body["choices"]?.arrayValue?.first?["message"]?["content"] == "card_arrival")

            let rows = try await store.teacherLog(after: 0, limit: 10)
            let row = try #require(rows.first)
            #expect(rows.count == 1)
            #expect(row.requestID == "req-1" && row.model == "m" && !row.streamed)
            #expect(row.prompt == "where is my card" && row.answer == "card_arrival")
            #expect(row.scope == Scope(of: try request(#","max_tokens":8"#), tenant: "t").key)
            #expect(try JSONValue.parse(Data(row.parameters.utf8)) == ["model": "m", "max_tokens": 8])
            #expect(try JSONValue.parse(Data(row.messages.utf8)).arrayValue?.count == 2)
            let tokens = try JSONDecoder().decode([TokenLogprob].self, from: Data(try #require(row.topLogprobs).utf8))
            #expect(tokens.first?.topLogprobs.map(\.token) == ["card_arrival", "lost_or_stolen_card"])
            #expect(row.promptTokens != nil && row.completionTokens != nil)
        }
    }

    @Test func aStreamedAnswerIsCommittedBeforeDone() async throws {
        try await withService { service, store, _ in
            let stream = try await service.stream(try request(#","stream":true"#), info: info)
            var text = ""
            var rowsWhenDone: Int64?
            await stream.run { sent in
                guard case .event(let event) = sent else { return }
                if event.isDone {
                    rowsWhenDone = try await store.teacherLogCount()
                } else {
                    text += try JSONValue.parse(Data(event.data.utf8))["choices"]?.arrayValue?.first?["delta"]?["content"]?.stringValue ?? ""
                }
            }
            #expect(text == "card_arrival")
            #expect(rowsWhenDone == 1, "the row exists by the time the client sees [DONE]")
            #expect(try await store.teacherLog(after: 0, limit: 1).first?.streamed == true)
        }
    }

    @Test func aReplayedStreamIsWrittenLikeTheOtherAnswers() async throws {
        try await withService { service, _, _ in
            let body = service.replay("see https://example.com/cards", finishReason: "stop", of: try request(#","stream":true"#), info: info)
            guard case .replay(let events) = body else {
                Issue.record("an answer distill has is replayed, not relayed")
                return
            }
            let chunks = events.filter { !$0.isDone }
            #expect(chunks.count == 3)
            for chunk in chunks {
                // Sorted keys and unescaped slashes, as JSONWriter writes the non-streamed answers.
                #expect(String(decoding: try JSONValue.parse(Data(chunk.data.utf8)).encoded(), as: UTF8.self) == chunk.data)
            }
            #expect(chunks.contains { $0.data.contains("https://example.com/cards") })
        }
    }

    @Test func aClientThatLeavesMidStreamStillLeavesItsAnswerInTheLog() async throws {
        struct Gone: Error {}
        try await withService { service, store, _ in
            let stream = try await service.stream(try request(#","stream":true"#), info: info)
            await stream.run { _ in throw Gone() }
            #expect(try await store.teacherLogCount() == 1)
        }
    }

    @Test func aFailingTeacherIsAnOpenAIStyleErrorAndLogsNothing() async throws {
        var faults = SimulatorFaults()
        faults.errorRate = 1
        try await withService(faults: faults) { service, store, simulator in
            await #expect(throws: DistillError.teacher(.upstreamFailure(status: 500))) {
                try await service.complete(try request(), info: info)
            }
            #expect(simulator.stats.errors == 2)
            let rows = try await store.teacherLogCount()
            #expect(rows == 0)
            #expect((service.metrics as? RecordingMetrics)?.snapshot.teacherCalls == ["upstream_error": 1])
        }
    }

    @Test func anAnswerThatCannotBeRecordedIsWithheld() async throws {
        try await withService { service, store, _ in
            try store.close()
            await #expect {
                try await service.complete(try request(), info: info)
            } throws: { error in
                error as? DistillError == .answerNotRecorded
            }
            let stream = try await service.stream(try request(#","stream":true"#), info: info)
            var events: [CompletionStream.Event] = []
            await stream.run { events.append($0) }
            #expect(!events.contains { if case .event(let event) = $0 { event.isDone } else { false } }, "no [DONE] for an answer that was not recorded")
            guard case .failure(.answerNotRecorded) = events.last else {
                Issue.record("the stream ends with the error: \(String(describing: events.last))")
                return
            }
        }
    }
}
