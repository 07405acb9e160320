import DistillAPI
import Foundation
import Hummingbird
import HummingbirdTesting
import SQLiteStore
import Testing

@testable import DistillServer

@Suite struct MetricsTests {
    static let scope = String(repeating: "cd", count: 32)

    /// The families docs/api.md lists: the backticked names in the first column of its metrics table.
    static func documentedFamilies() throws -> Set<String> {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../docs/api.md").standardized.path
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let section = try #require(text.components(separatedBy: "### Metrics").dropFirst().first?.components(separatedBy: "\n## ").first)
        let names = section.split(separator: "\n").filter { $0.hasPrefix("| `") }.flatMap { row in
            row.split(separator: "|")[0].matches(of: /`([a-z_]+)`/).map { String($0.output.1) }
        }
        return Set(names.filter { $0.hasPrefix("distill_") || $0.hasPrefix("process_") })
    }

    /// A fresh daemon's /metrics: every family docs/api.md lists, and only those, each series with
    /// known labels at zero. Its store holds an active student, so per-scope series are there too.
    @Test func aFreshDaemonExposesEveryDocumentedFamilyAtZero() async throws {
        var config = DistillConfig()
        config.store.dataDir = FileManager.default.temporaryDirectory.appendingPathComponent("distill-metrics-\(UUID().uuidString)").path
        config.teacher.baseURL = "http://127.0.0.1:1/v1"
        try FileManager.default.createDirectory(atPath: config.store.dataDir, withIntermediateDirectories: true)
        let store = try SQLiteStore(path: config.store.databasePath)
        _ = try await StoredStudent.add(to: store, scope: Self.scope, embeddingModel: RoutesTests.embedder.identity.key, status: .active)
        try store.close()

        let system = try await DistillSystem.open(config: config, environment: [:], embedder: RoutesTests.embedder, logger: RoutesTests.quiet)
        let app = buildApplication(
            system: system, listener: .tcp(.init(host: "127.0.0.1", port: 0)), listeners: Listeners(), logger: RoutesTests.quiet)
        let documented = try Self.documentedFamilies()
        try await app.test(.router) { client in
            try await client.execute(uri: "/metrics", method: .get) { response in
                let exposition = String(buffer: response.body)
                let exposed = Set(exposition.split(separator: "\n").filter { $0.hasPrefix("# TYPE ") }.map { String($0.split(separator: " ")[2]) })
                #expect(exposed.subtracting(documented).isEmpty, "exposed, not in docs/api.md: \(exposed.subtracting(documented).sorted())")
                #expect(documented.subtracting(exposed).isEmpty, "in docs/api.md, not exposed: \(documented.subtracting(exposed).sorted())")
                for series in [
                    #"distill_store_write_failures_total{operation="teacher_log"} 0"#,
                    #"distill_student_suspensions_total 0"#,
                    #"distill_http_refusals_total{code="invalid_http"} 0"#,
                    #"distill_teacher_calls_total{outcome="unreachable"} 0"#,
                    #"distill_student_audits_total{result="disagree"} 0"#,
                    #"distill_distill_runs_total{outcome="failed"} 0"#,
                    #"distill_http_requests_total{route="/v1/chat/completions",status="200",source="student"} 0"#,
                    #"distill_student_live_agreement{scope="cdcdcdcdcdcd"} nan"#,
                    #"distill_build_info{version="\#(DistillVersion.current)"} 1.0"#,
                ] {
                    #expect(exposition.contains(series + "\n"), "no \(series)")
                }
                func value(_ name: String) -> Double? {
                    exposition.split(separator: "\n").first { $0.hasPrefix(name + " ") }.flatMap { Double($0.split(separator: " ")[1]) }
                }
                #expect(try #require(value("process_resident_memory_bytes")) > 10e6)
                #expect(try #require(value("process_open_fds")) >= 3)
                #expect(try #require(value("process_max_fds")) >= value("process_open_fds")!)
                let started = try #require(value("process_start_time_seconds"))
                #expect(started <= Date().timeIntervalSince1970 && started > Date().timeIntervalSince1970 - 86400)
            }
        }
        await system.shutdown(logger: RoutesTests.quiet)
    }
}
