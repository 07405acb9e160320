import AsyncHTTPClient
import ChildProcess
import DistillAPI
import DistillClient
import Foundation
import NIOCore

/// What the end-to-end suites share: data, and a world of processes with clients of them.
enum EndToEnd {
    static let softLabels = ChildProcess.packageRoot.appendingPathComponent("../shared/data/banking77/teacher_soft.jsonl").standardized.path
    static let modelDirectory = ChildProcess.packageRoot.appendingPathComponent("models/all-MiniLM-L6-v2").path

    /// Banking77 queries and the soft-label teacher's answers to them, read from the data file.
    static let samples: [(query: String, answer: String)] = {
        struct Line: Decodable { var text: String; var top: [[JSONValue]] }
        return try! String(contentsOfFile: softLabels, encoding: .utf8).split(separator: "\n").prefix(200).map { text in
            let line = try! JSONDecoder().decode(Line.self, from: Data(text.utf8))
            return (line.text, line.top[0][0].stringValue!)
        }
    }()

    static var sample: (query: String, answer: String) { samples[0] }

    /// A test's world: a temp directory, teacher-sim (its own, or another world's), and distilld
    /// started on it.
    struct World {
        let directory: URL
        let simulator: ChildProcess
        let simulatorURL: String
        /// Whether `stop()` stops teacher-sim too (false when it is another world's).
        let ownsSimulator: Bool
        var daemon: ChildProcess
        var http: String
        var socket: String { directory.appendingPathComponent("distilld.sock").path }

        /// `teacherOf`: a world whose teacher-sim this one's distilld asks too (nodes of a cluster).
        static func start(
            simulatorFlags: [String] = [], environment: [String: String] = [:], teacherOf other: World? = nil
        ) async throws -> World {
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("distill-e2e-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            let simulator = try other?.simulator
                ?? ChildProcess("teacher-sim", ["--port", "0", "--soft-jsonl", softLabels] + simulatorFlags, in: directory)
            let simulatorURL = try await simulator.address("http://")
            var world = World(
                directory: directory, simulator: simulator, simulatorURL: simulatorURL, ownsSimulator: other == nil, daemon: simulator,
                http: "")
            do {
                try await world.startDaemon(environment: environment)
            } catch {
                if world.ownsSimulator { await simulator.stop() }
                throw error
            }
            return world
        }

        mutating func startDaemon(environment: [String: String] = [:]) async throws {
            daemon = try ChildProcess(
                "distilld",
                ["--http", "127.0.0.1:0", "--socket", socket, "--data-dir", directory.appendingPathComponent("data").path,
                 "--teacher-url", "\(simulatorURL)/v1"],
                environment: ["DISTILL_EMBEDDING_MODEL_DIR": modelDirectory].merging(environment) { $1 }, in: directory)
            http = try await daemon.address("http://")
            _ = try await daemon.address("unix:")
        }

        func stop() async {
            await daemon.stop()
            if ownsSimulator { await simulator.stop() }
        }

        /// distilld over TCP; `key` is sent as the API key (the tenant).
        func client(key: String? = nil) -> DistillClient { DistillClient(.tcp(http), apiKey: key) }

        /// distilld over its Unix socket: the admin API, and the public one.
        var socketClient: DistillClient { DistillClient(.unix(socket)) }

        func cachectl(_ arguments: [String]) async throws -> (status: Int32, stdout: String, stderr: String) {
            try await runToCompletion("cachectl", ["--socket", socket] + arguments, in: directory)
        }

        /// teacher-sim's counters (`GET /sim/stats`): what reached the teacher.
        func simulatorStats() async throws -> JSONValue {
            let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: "\(simulatorURL)/sim/stats"), timeout: .seconds(30))
            return try JSONValue.parse(Data(String(buffer: try await response.body.collect(upTo: 1 << 20)).utf8))
        }
    }

    /// A request for one user message, as the tests send it.
    static func request(_ query: String, parameters: [String: JSONValue] = [:]) -> ChatCompletionRequest {
        ChatCompletionRequest(model: "gpt-test", user: query, parameters: parameters)
    }
}
