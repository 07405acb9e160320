import Foundation
import SQLiteStore
import Storage
import Testing

/// What only a SQLite store does (the shared behaviour is in ConformanceTests).
@Suite struct TeacherLogTests {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("distill-storage-\(UUID().uuidString)")
    var path: String { directory.appendingPathComponent("distill.sqlite").path }

    func record(_ n: Int, scope: String = "s") -> TeacherLogRecord {
        TeacherLogRecord(
            createdAt: Date(timeIntervalSince1970: 1_800_000_000 + Double(n)), requestID: "r\(n)", scope: scope,
            model: "m", messages: #"[{"role":"user","content":"q\#(n)"}]"#, parameters: #"{"model":"m"}"#,
            prompt: "q\(n)", answer: "a\(n)", topLogprobs: n.isMultiple(of: 2) ? "[]" : nil, promptTokens: n,
            completionTokens: nil, latencyMilliseconds: 1.5, streamed: n.isMultiple(of: 3))
    }

    @Test func rowsSurviveReopening() async throws {
        do {
            let store = try SQLiteStore(path: path)
            try await store.appendTeacherExchange(record(1))
            try store.close()
        }
        let reopened = try SQLiteStore(path: path)
        #expect(try await reopened.teacherLog(after: 0, limit: 10).map(\.answer) == ["a1"])
        #expect((reopened.sizeOnDisk ?? 0) > 0)
        try await reopened.checkHealth()
        try reopened.close()
    }

    @Test func aStoreThatCannotBeCreatedSaysWhere() throws {
        let blocker = directory.appendingPathComponent("file")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try Data("not a directory".utf8).write(to: blocker)
        let badPath = blocker.appendingPathComponent("distill.sqlite").path
        #expect {
            try SQLiteStore(path: badPath)
        } throws: { error in
            "\(error)".contains(badPath)
        }
    }
}
