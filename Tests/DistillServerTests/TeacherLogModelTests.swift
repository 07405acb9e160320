import Foundation
import Logging
import SQLiteStore
import Storage
import Testing

@testable import DistillServer
import DistillCore

/// The teacher log's vectors train the students: when the embedding model changes they are
/// dropped, whether or not the cache (which re-embeds its own entries) is on.
@Suite struct TeacherLogModelTests {
    static let quiet = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

    func withStore(_ body: (SQLiteStore) async throws -> Void) async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("distill-model-\(UUID().uuidString)")
        let store = try SQLiteStore(path: directory.appendingPathComponent("distill.sqlite").path)
        try await body(store)
        try store.close()
    }

    /// Appends one exchange with a vector.
    func logExchange(_ store: SQLiteStore) async throws {
        _ = try await store.appendTeacherExchange(
            TeacherLogRecord(
                createdAt: Date(), requestID: "r", scope: "s", model: "m", messages: "[]", parameters: "{}", prompt: "q",
                answer: "a", topLogprobs: nil, promptTokens: nil, completionTokens: nil, latencyMilliseconds: 1,
                streamed: false, vector: [0.5, 0.5]))
    }

    func vectors(_ store: SQLiteStore) async throws -> Int {
        try await store.teacherLog(after: 0, limit: 100).filter { $0.embedding != nil }.count
    }

    @Test func vectorsOfTheSameModelAreKept() async throws {
        try await withStore { store in
            try await logExchange(store)
            try await DistillSystem.dropTeacherLogVectors(ofModelsOtherThan: "a@1", store: store, logger: Self.quiet)
            try await DistillSystem.dropTeacherLogVectors(ofModelsOtherThan: "a@1", store: store, logger: Self.quiet)
            #expect(try await vectors(store) == 1, "a new store records its model and keeps its vectors")
        }
    }

    @Test func vectorsOfAnotherModelAreDropped() async throws {
        try await withStore { store in
            try await logExchange(store)
            try await DistillSystem.dropTeacherLogVectors(ofModelsOtherThan: "a@1", store: store, logger: Self.quiet)
            try await DistillSystem.dropTeacherLogVectors(ofModelsOtherThan: "b@2", store: store, logger: Self.quiet)
            #expect(try await vectors(store) == 0)
            #expect(try await store.metadata(DistillSystem.teacherLogModelKey) == "b@2")
        }
    }

    @Test func aStoreFromBeforeTheKeyGoesByTheCachesModel() async throws {
        try await withStore { store in
            try await logExchange(store)
            try await store.setMetadata(SemanticCache.modelKey, "a@1")
            try await DistillSystem.dropTeacherLogVectors(ofModelsOtherThan: "b@2", store: store, logger: Self.quiet)
            #expect(try await vectors(store) == 0)
        }
    }
}
