import Foundation
import SQLiteStore
import Storage
import Testing

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

    @Test func appendsAndPagesInOrder() async throws {
        let store = try SQLiteStore(path: path)
        var ids: [Int64] = []
        for n in 1...5 { ids.append(try await store.appendTeacherExchange(record(n))) }
        #expect(ids == ids.sorted() && Set(ids).count == 5)
        #expect(try await store.teacherLogCount() == 5)

        let first = try await store.teacherLog(after: 0, limit: 2)
        let rest = try await store.teacherLog(after: first.last!.id!, limit: 10)
        var expected = (1...5).map { record($0) }
        for i in expected.indices { expected[i].id = ids[i] }
        #expect(first + rest == expected)
        try store.close()
    }

    @Test func everyCommitToTheTeacherLogIsAnnounced() async throws {
        let store = try SQLiteStore(path: path)
        var commits = store.teacherLogCommits().makeAsyncIterator()
        for n in 1...3 {
            try await store.appendTeacherExchange(record(n))
            // Announced by the time the append returns: the distiller, woken, counts the row that made a run due.
            let announced: Void? = await commits.next()
            #expect(announced != nil)
        }
        try store.close()
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

@Suite struct StudentStorageTests {
    let store: SQLiteStore

    init() throws {
        store = try SQLiteStore(path: FileManager.default.temporaryDirectory.appendingPathComponent("distill-student-\(UUID().uuidString)/distill.sqlite").path)
    }

    func exchange(_ scope: String, vector: [Float]?) -> TeacherLogRecord {
        TeacherLogRecord(
            createdAt: Date(), requestID: "r", scope: scope, model: "m", messages: "[]", parameters: "{}", prompt: "q",
            answer: "a", topLogprobs: nil, promptTokens: nil, completionTokens: nil, latencyMilliseconds: 1, streamed: false,
            vector: vector)
    }

    @Test func theLogKeepsEmbeddingsAndReportsActivityPerScope() async throws {
        let first = try await store.appendTeacherExchange(exchange("s", vector: [1, 2]))
        try await store.appendTeacherExchange(exchange("s", vector: nil))
        let third = try await store.appendTeacherExchange(exchange("t", vector: [3]))
        let rows = try await store.teacherLog(scope: "s")
        #expect(rows.map { $0.embedding.map(CacheEntryRecord.decode) } == [[1, 2], nil])
        try await store.setTeacherLogEmbeddings([(rows[1].id!, [5, 6])])
        #expect(try await store.teacherLog(scope: "s", after: first, limit: 10).first?.embedding.map(CacheEntryRecord.decode) == [5, 6])
        let activity = try await store.teacherLogActivity(after: first)
        #expect(activity["s"]?.count == 1 && activity["t"]?.newest == third)
    }

    @Test func activatingAVersionRetiresTheActiveOne() async throws {
        func version(_ scope: String) -> StudentVersionRecord {
            StudentVersionRecord(scope: scope, createdAt: Date(), status: .candidate, model: Data([1, 2, 3]), metrics: "{}", trainedThrough: 9, trainingSeconds: 1.5)
        }
        let v1 = try await store.addStudentVersion(version("s"))
        let v2 = try await store.addStudentVersion(version("s"))
        let other = try await store.addStudentVersion(version("t"))
        try await store.activateStudentVersion(id: v1)
        try await store.activateStudentVersion(id: other)
        try await store.activateStudentVersion(id: v2)
        #expect(Set(try await store.currentStudentVersions().compactMap(\.id)) == [v2, other])
        #expect(try await store.studentVersion(id: v1)?.status == .retired)
        #expect(try await store.studentVersions(scope: "s").map(\.id) == [v2, v1])
        await #expect(throws: StoreError.self) { try await store.activateStudentVersion(id: 999) }
    }

    @Test func anActiveVersionIsAddedAndItsPredecessorRetiredAtOnce() async throws {
        func version(_ scope: String, _ status: StudentVersionRecord.Status, through: Int64) -> StudentVersionRecord {
            StudentVersionRecord(scope: scope, createdAt: Date(), status: status, model: Data([7]), metrics: "{}", trainedThrough: through, trainingSeconds: 0.5)
        }
        let v1 = try await store.addStudentVersion(version("s", .active, through: 10))
        let rejected = try await store.addStudentVersion(version("s", .rejected, through: 30))
        let v2 = try await store.addStudentVersion(version("s", .active, through: 20))
        _ = try await store.addStudentVersion(version("t", .active, through: 5))
        #expect(try await store.studentVersion(id: v1)?.status == .retired)
        #expect(try await store.studentVersion(id: rejected)?.status == .rejected)
        #expect(try await store.currentStudentVersions().filter { $0.scope == "s" }.map(\.id) == [v2])
        let listed = try await store.studentVersions(scope: "s")
        #expect(listed.map(\.id) == [v2, rejected, v1] && listed.allSatisfy { $0.model.isEmpty && $0.trainedThrough > 0 })
    }

    @Test func theLatestExchangesOfAScopeComeOldestFirst() async throws {
        var ids: [Int64] = []
        for i in 0..<5 {
            ids.append(try await store.appendTeacherExchange(exchange(i == 2 ? "other" : "s", vector: nil)))
        }
        #expect(try await store.latestTeacherLog(scope: "s", limit: 3).map(\.id) == [ids[1], ids[3], ids[4]])
    }

    @Test func untrainedExchangesAreCountedFromTheNewestTrainedThrough() async throws {
        var ids: [Int64] = []
        for i in 0..<6 {
            ids.append(try await store.appendTeacherExchange(exchange(i < 4 ? "s" : "t", vector: nil)))
        }
        func version(through: Int64, _ status: StudentVersionRecord.Status) -> StudentVersionRecord {
            StudentVersionRecord(scope: "s", createdAt: Date(), status: status, model: Data(), metrics: "{}", trainedThrough: through, trainingSeconds: 0)
        }
        var untrained = try await store.untrainedTeacherLog()
        #expect(untrained["s"]?.count == 4 && untrained["s"]?.trained == false && untrained["t"]?.count == 2)
        _ = try await store.addStudentVersion(version(through: ids[1], .active))
        _ = try await store.addStudentVersion(version(through: ids[2], .rejected))
        untrained = try await store.untrainedTeacherLog()
        #expect(untrained["s"]?.count == 1 && untrained["s"]?.trained == true && untrained["t"]?.trained == false)
    }
}
