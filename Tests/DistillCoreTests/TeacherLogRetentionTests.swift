import DistillAPI
import Foundation
import SQLiteStore
import Storage
import Testing

@testable import DistillCore

/// Purging the teacher log: what goes, what stays, and what the purge says it cost.
@Suite struct TeacherLogRetentionTests {
    let store: SQLiteStore
    let start = Date(timeIntervalSince1970: 1_800_000_000)

    init() throws {
        store = try SQLiteStore(path: FileManager.default.temporaryDirectory.appendingPathComponent("distill-retention-\(UUID().uuidString)/distill.sqlite").path)
    }

    func log(scope: String, secondsAfterStart: Double) async throws {
        let record = TeacherLogRecord(
            createdAt: start.addingTimeInterval(secondsAfterStart), requestID: UUID().uuidString, scope: scope, model: "m",
            messages: "[]", parameters: "{}", prompt: "p", answer: "a", topLogprobs: nil, promptTokens: nil,
            completionTokens: nil, latencyMilliseconds: 1, streamed: false)
        _ = try await store.appendTeacherExchange(record, cacheEntry: nil)
    }

    @Test func aPurgeDeletesWhatIsOlderAndSaysHowManyPerScope() async throws {
        let (a, b) = (String(repeating: "a", count: 64), String(repeating: "b", count: 64))
        for seconds in [0.0, 10, 20] { try await log(scope: a, secondsAfterStart: seconds) }
        try await log(scope: b, secondsAfterStart: 0)
        let retention = TeacherLogRetention(store: store, students: nil, retention: nil, clock: SystemClock(), logger: quietLogger)
        #expect(try await retention.resolveScope("aaaa") == a)

        let first = try await retention.purge(scope: a, createdBefore: start.addingTimeInterval(15))
        #expect(first == TeacherLogPurge(deleted: 2, scopes: [.init(scope: a, deleted: 2, servingStudentLearnedFromThem: false)]))
        #expect(try await store.teacherLogCount() == 2, "the newer one of a and b's stay")

        let rest = try await retention.purge(scope: nil, createdBefore: start.addingTimeInterval(100))
        #expect(rest.deleted == 2 && rest.scopes.map(\.scope) == [a, b])
        #expect(try await store.teacherLogCount() == 0)
    }

    @Test func onlyTheLeaderSweeps() async throws {
        for seconds in [0.0, 10] { try await log(scope: "s", secondsAfterStart: seconds) }
        let clock = ManualClock(start.addingTimeInterval(100))
        let leadership = Leadership(leading: false)
        let retention = TeacherLogRetention(
            store: store, students: nil, retention: 95, clock: clock, leadership: leadership, logger: quietLogger)
        #expect(try await retention.sweep() == nil)
        #expect(try await store.teacherLogCount() == 2, "a node that does not lead leaves the log to the leader")
        leadership.set(true)
        #expect(try await retention.sweep()?.deleted == 1)
        #expect(try await store.teacherLogCount() == 1)
    }
}
