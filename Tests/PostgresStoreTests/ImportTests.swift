import ChildProcess
import Foundation
import PostgresStore
import SQLiteStore
import Storage
import Testing

@Suite(.enabled(if: serverAvailable, Comment(rawValue: ScratchPostgres.missingMessage)))
struct ImportTests {
    func exchange(_ n: Int) -> TeacherLogRecord {
        TeacherLogRecord(
            createdAt: Date(timeIntervalSince1970: 1_800_000_000 + Double(n)), requestID: "r\(n)", scope: n.isMultiple(of: 2) ? "s" : "t",
            model: "m", messages: "[]", parameters: "{}", prompt: "q\(n)", answer: "a\(n)", topLogprobs: nil, promptTokens: n,
            completionTokens: nil, latencyMilliseconds: 2, streamed: false, vector: [Float(n), 1])
    }

    func entry(_ n: Int) -> CacheEntryRecord {
        CacheEntryRecord(
            scope: n.isMultiple(of: 2) ? "s" : "t", exactKey: "q\(n)", prompt: "q\(n)", messages: "[]", answer: "a\(n)",
            finishReason: "stop", vector: [Float(n), 1], createdAt: Date(timeIntervalSince1970: 1_800_000_000), expiresAt: nil)
    }

    @Test func aSQLiteStoreMovesIntoPostgreSQLWithItsIds() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("distill-import-\(UUID().uuidString)/distill.sqlite").path
        let source = try SQLiteStore(path: path)
        // Gaps in the ids (a deleted entry, a replaced one) must survive the move.
        for n in 1...30 { _ = try await source.appendTeacherExchange(exchange(n), cacheEntry: n.isMultiple(of: 3) ? nil : entry(n)) }
        _ = try await source.appendTeacherExchange(exchange(31), cacheEntry: entry(1))
        _ = try await source.deleteCacheEntries(ids: [2])
        let version = try await source.addStudentVersion(
            StudentVersionRecord(scope: "s", createdAt: Date(timeIntervalSince1970: 1_800_000_100), status: .active, model: Data([9, 8, 7]),
                                 metrics: "{}", trainedThrough: 20, trainingSeconds: 3))
        try await source.configureScope("t", ScopeOverrides(similarityThreshold: 0.8), entryLifetime: nil)
        try await source.setMetadata("embedding_model", "m@1")
        try await source.saveIndexSnapshot(scope: "s", watermark: 7, bytes: [1, 2])
        try await source.configureScope("s", ScopeOverrides(maxError: 0.02), entryLifetime: nil)
        let beliefs = [
            CacheBeliefRecord(scope: "s", entryID: nil, belief: Data("scope".utf8)),
            CacheBeliefRecord(scope: "s", entryID: 4, belief: Data("entry".utf8)),
        ]
        try await source.saveCacheBeliefs(beliefs)

        let target = try await Server.open(try await Server.configuration())
        let summary = try await target.importRows(from: source, metadataKeys: ["embedding_model", "absent"], progress: { _ in })
        #expect(summary.teacherLogRows == 31 && summary.cacheEntries == 19)
        let sourceLog = try await source.teacherLog(after: 0, limit: 100)
        let sourceEntries = try await source.cacheEntries(scope: nil, after: 0, limit: 100)
        let sourceVersion = try await source.studentVersion(id: version)
        #expect(try await target.teacherLog(after: 0, limit: 100) == sourceLog)
        #expect(try await target.cacheEntries(scope: nil, after: 0, limit: 100) == sourceEntries)
        #expect(try await target.studentVersion(id: version) == sourceVersion)
        #expect(try await target.scopeSettings()["t"]?.similarityThreshold == 0.8)
        #expect(try await target.metadata("embedding_model") == "m@1")
        #expect(try await target.indexSnapshot(scope: "s")?.watermark == 7)
        #expect(try await target.scopeMaxErrors() == ["s": 0.02])
        #expect(try await target.cacheBeliefs() == beliefs, "what the verified cache learned")
        // New rows follow the copied ones.
        let next = try await target.appendTeacherExchange(exchange(32), cacheEntry: entry(32))
        let lastCopied = try await source.cacheEntries(scope: nil, after: 0, limit: 100).last?.id
        #expect(next.logID == 32 && next.entryID! > lastCopied!)

        // Into a store that holds rows: refused, and nothing changes.
        await #expect(throws: (any Error).self) {
            _ = try await target.importRows(from: source, metadataKeys: [], progress: { _ in })
        }
        #expect(try await target.teacherLogCount() == 32)
        try target.close()
        try source.close()
    }
}
