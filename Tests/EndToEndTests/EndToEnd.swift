import ChildProcess
import AsyncHTTPClient
import DistillAPI
import Foundation
import NIOCore
import NIOFoundationCompat
import NIOHTTP1

/// What the end-to-end suites share: data, a world of processes, and an HTTP client.
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

    /// A test's world: a temp directory, teacher-sim, and distilld started on it.
    struct World {
        let directory: URL
        let simulator: ChildProcess
        let simulatorURL: String
        var daemon: ChildProcess
        var http: String
        var socket: String { directory.appendingPathComponent("distilld.sock").path }

        static func start(simulatorFlags: [String] = [], environment: [String: String] = [:]) async throws -> World {
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("distill-e2e-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            let simulator = try ChildProcess("teacher-sim", ["--port", "0", "--soft-jsonl", softLabels] + simulatorFlags, in: directory)
            let simulatorURL = try await simulator.address("http://")
            var world = World(directory: directory, simulator: simulator, simulatorURL: simulatorURL, daemon: simulator, http: "")
            do {
                try await world.startDaemon(environment: environment)
            } catch {
                await simulator.stop()
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
            await simulator.stop()
        }

        func cachectl(_ arguments: [String]) async throws -> (status: Int32, stdout: String) {
            try await runToCompletion("cachectl", ["--socket", socket] + arguments, in: directory)
        }

        func simulatorStats() async throws -> JSONValue {
            try await get("\(simulatorURL)/sim/stats").json
        }
    }

    struct Reply {
        var status: Int
        var headers: [String: String]
        var body: Data
        var json: JSONValue { (try? JSONValue.parse(body)) ?? .null }
        var errorCode: String? { json["error"]?["code"]?.stringValue }
    }

    static func send(_ url: String, method: HTTPMethod = .POST, headers: [String: String] = [:], body: Data? = nil) async throws -> Reply {
        var request = HTTPClientRequest(url: url)
        request.method = method
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let body { request.body = .bytes(ByteBuffer(data: body)) }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(60))
        let data = try await response.body.collect(upTo: 16 << 20)
        return Reply(
            status: Int(response.status.code),
            headers: Dictionary(response.headers.map { ($0.name.lowercased(), $0.value) }, uniquingKeysWith: { a, _ in a }),
            body: Data(buffer: data))
    }

    static func get(_ url: String) async throws -> Reply { try await send(url, method: .GET) }

    static func completion(_ query: String, stream: Bool = false, extra: [String: JSONValue] = [:]) -> Data {
        var body: [String: JSONValue] = ["model": "gpt-test", "stream": .bool(stream), "messages": [["role": "user", "content": .string(query)]]]
        body.merge(extra) { $1 }
        return JSONValue.object(body).encoded()
    }

    static func unixURL(_ socket: String, _ path: String) -> String {
        "http+unix://\(socket.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!)\(path)"
    }

}
