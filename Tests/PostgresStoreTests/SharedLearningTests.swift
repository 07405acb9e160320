import ChildProcess
import Foundation
import PostgresStore
import Storage
import Testing

/// What several nodes learn together: the audits' tests and the verified cache's beliefs, updated by
/// two nodes at once, lose no update.
@Suite(.enabled(if: serverAvailable, Comment(rawValue: ScratchPostgres.missingMessage)))
struct SharedLearningTests {
    @Test func concurrentAuditsOfTwoNodesAreEachCountedOnceAndTheAlarmSuspendsTheVersion() async throws {
        let configuration = try await Server.configuration()
        let (a, b) = (try await Server.open(configuration), try await Server.open(configuration))
        let version = try await a.addStudentVersion(
            StudentVersionRecord(scope: "s", createdAt: Date(), status: .active, model: Data(), metrics: "{}", trainedThrough: 1, trainingSeconds: 0))
        let start = try await b.latestChangeID()
        // Each audit adds one to the statistic; the 40th alarms.
        let suspensions = try await withThrowingTaskGroup(of: Bool.self) { group in
            for i in 0..<40 {
                group.addTask {
                    try await (i % 2 == 0 ? a : b).recordAudit(version: version) { stored in
                        let statistic = stored.statistic + 1
                        return AuditTestRecord(
                            statistic: statistic, observations: stored.observations + 1, failures: stored.failures + 1, alarmed: statistic >= 40)
                    }.suspended
                }
            }
            return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        #expect(suspensions == 1)
        #expect(try await a.studentVersion(id: version)?.status == .suspended)
        #expect(try await b.changes(after: start, limit: 10).map(\.change) == [.studentVersionsChanged(scope: "s")])
        let after = try await b.recordAudit(version: version) { $0 }
        #expect(after.test == AuditTestRecord(statistic: 40, observations: 40, failures: 40, alarmed: true) && !after.suspended)

        // Activated again, it starts afresh.
        try await b.activateStudentVersion(id: version)
        #expect(try await a.recordAudit(version: version) { $0 }.test == AuditTestRecord())
        try a.close()
        try b.close()
    }

    @Test func concurrentBeliefMergesOfTwoNodesEachReadTheOneBefore() async throws {
        let configuration = try await Server.configuration()
        let (a, b) = (try await Server.open(configuration), try await Server.open(configuration))
        // A belief that counts the merges made into it.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<30 {
                group.addTask {
                    _ = try await (i % 2 == 0 ? a : b).mergeCacheBeliefs(scopes: ["s"], entries: []) { stored in
                        let count = stored.first.flatMap { Int(String(decoding: $0.belief, as: UTF8.self)) } ?? 0
                        return [CacheBeliefRecord(scope: "s", entryID: nil, belief: Data(String(count + 1).utf8))]
                    }
                }
            }
            try await group.waitForAll()
        }
        #expect(try await a.cacheBeliefs() == [CacheBeliefRecord(scope: "s", entryID: nil, belief: Data("30".utf8))])
        try a.close()
        try b.close()
    }
}
