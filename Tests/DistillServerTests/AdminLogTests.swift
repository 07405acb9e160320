import DistillAPI
import Foundation
import Hummingbird
import HTTPTypes
import HummingbirdTesting
import Logging
import Testing

@testable import DistillServer

/// Every admin action that changes something leaves one info line, without prompt or answer text.
@Suite struct AdminLogTests {
    @Test func eachAdminActionLogsOneInfoLine() async throws {
        let capture = LogCapture()
        let logger = Logger(label: "distilld") { _ in CapturingHandler(capture: capture) }
        try await RoutesTests().withApp(logger: logger) { client, system, _ in
            try await client.execute(uri: "/v1/chat/completions", method: .post, body: ByteBuffer(string: RoutesTests.question + "}")) {
                #expect($0.status == .ok)
            }
            let entry = try #require(try await system.store.cacheEntries(scope: nil, after: 0, limit: 1).first)
            let scope = entry.scope

            func send(_ method: HTTPRequest.Method, _ uri: String, _ body: String = "") async throws {
                try await client.execute(uri: uri, method: method, body: ByteBuffer(string: body)) { response in
                    #expect(response.status.code < 300, "\(method) \(uri): \(String(buffer: response.body))")
                }
            }
            let export = try await client.execute(uri: "/admin/cache/export", method: .get) {
                try JSONDecoder.admin.decode(CacheExportPage.self, from: Data(buffer: $0.body))
            }
            try await send(.post, "/admin/cache/import", String(decoding: try JSONEncoder.admin.encode(export.lines), as: UTF8.self))
            try await send(.put, "/admin/cache/scopes/\(scope)", #"{"similarity_threshold":0.9,"ttl_seconds":60}"#)
            try await send(.delete, "/admin/cache/entries/\(entry.id!)")
            try await send(.post, "/admin/cache/purge", #"{"scope":"\#(scope)"}"#)

            let model = try #require(system.embedder).identity.key
            let first = try await StoredStudent.add(to: system.store, scope: scope, embeddingModel: model, status: .candidate)
            let second = try await StoredStudent.add(to: system.store, scope: scope, embeddingModel: model, status: .candidate)
            try await send(.post, "/admin/student/versions/\(first)/promote")
            try await send(.post, "/admin/student/versions/\(second)/promote")
            try await send(.post, "/admin/student/rollback", #"{"scope":null}"#)
            try await send(.put, "/admin/student/scopes/\(scope)", #"{"enabled":false}"#)
            try await send(.post, "/admin/distill/runs", #"{"scope":"\#(scope)"}"#)
            try await send(.get, "/admin/backup")
            try await send(.post, "/admin/teacher-log/purge", #"{"scope":null,"older_than_seconds":0}"#)
        }
        let admin = capture.lines.filter { $0.hasPrefix("info admin: ") }
        let actions = [
            "cache entries imported", "cache scope configured", "cache entry deleted", "cache purged", "student version promoted",
            "student rolled back", "student disabled", "distillation requested", "backup made", "teacher log purged",
        ]
        for action in actions {
            #expect(admin.count { $0.hasPrefix("info admin: \(action) ") } == (action == "student version promoted" ? 2 : 1), "\(action) in \(admin)")
        }
        #expect(admin.count == actions.count + 1)
        #expect(admin.contains { $0.contains("admin: student rolled back") && $0.contains("distill.version=") })
        #expect(admin.contains { $0.contains("admin: cache purged") && $0.contains("distill.count=") })
        for line in capture.lines {
            #expect(!line.contains("where is my card") && !line.contains("card_arrival"), "prompt or answer text in: \(line)")
        }
    }
}
