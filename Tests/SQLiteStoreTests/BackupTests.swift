import Foundation
import GRDB
import SQLiteStore
import Storage
import Testing

@Suite struct BackupTests {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("distill-backup-\(UUID().uuidString)")

    func record(_ n: Int) -> TeacherLogRecord {
        TeacherLogRecord(
            createdAt: Date(timeIntervalSince1970: 1_800_000_000 + Double(n)), requestID: "r\(n)", scope: "s", model: "m",
            messages: "[]", parameters: "{}", prompt: "q\(n)", answer: "a\(n)", topLogprobs: nil, promptTokens: nil,
            completionTokens: nil, latencyMilliseconds: 1, streamed: false)
    }

    @Test func aBackupTakenWhileWritersCommitHoldsAConsistentPrefix() async throws {
        let store = try SQLiteStore(path: directory.appendingPathComponent("distill.sqlite").path)
        for n in 1...50 { try await store.appendTeacherExchange(record(n)) }
        let copy = directory.appendingPathComponent("copy.sqlite").path
        // Writers go on committing while the copy is made.
        let writer = Task {
            for n in 51...250 { try await store.appendTeacherExchange(record(n)) }
        }
        let summary = try await store.backup(to: copy)
        try await writer.value
        #expect(summary.teacherLogRows >= 50 && summary.teacherLogRows <= 250)
        #expect(summary.bytes == (try FileManager.default.attributesOfItem(atPath: copy)[.size] as? NSNumber)?.int64Value)
        #expect(!FileManager.default.fileExists(atPath: copy + "-wal"), "the copy is one file")

        // The copy opens as a store, and holds rows 1…k with nothing missing.
        let restored = try SQLiteStore(path: copy)
        let rows = try await restored.teacherLog(after: 0, limit: 1000)
        #expect(rows.map(\.answer) == (1...Int(summary.teacherLogRows)).map { "a\($0)" })
        try restored.close()
        try store.close()
    }

    @Test func neverOverwritesAFile() async throws {
        let store = try SQLiteStore(path: directory.appendingPathComponent("distill.sqlite").path)
        let existing = directory.appendingPathComponent("existing").path
        try Data("keep me".utf8).write(to: URL(fileURLWithPath: existing))
        await #expect(throws: StoreError.self) { try await store.backup(to: existing) }
        #expect(try String(contentsOfFile: existing, encoding: .utf8) == "keep me")
        try store.close()
    }
}

@Suite struct SchemaVersionTests {
    @Test func aStoreMigratedByANewerVersionIsRefusedNotGuessedAt() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("distill-newer-\(UUID().uuidString).sqlite").path
        try SQLiteStore(path: path).close()
        // What a later version's migration leaves behind.
        let queue = try DatabaseQueue(path: path)
        try await queue.write { db in try db.execute(sql: "INSERT INTO grdb_migrations (identifier) VALUES ('v99: from the future')") }
        try queue.close()
        #expect {
            _ = try SQLiteStore(path: path)
        } throws: { error in
            "\(error)".contains("newer distilld")
        }
    }
}
