import ArgumentParser
import AsyncHTTPClient
import ChildProcess
import DistillAPI
import DistillClient
import Foundation
import GRDB
import SeededRandom
import Synchronization
import TeacherSimulator

// What `distill-bench soak` and `distill-bench chaos` share: the processes (teacher-sim and
// distilld from the build), the Banking77 workload and its load, and checks of the store.
// Every random choice comes from a SplitMix64 with a seed, so a run can be repeated (the
// daemon's own timing still varies).

/// The options both runs take.
struct ReliabilityOptions: ParsableArguments {
    @Option(help: "Seed of the workload's choices.") var seed: UInt64 = 1
    @Option(help: "Teacher answers before the first student (DISTILL_DISTILL_MIN_ROWS).") var minRows = 1000
    @Option(name: .customLong("soft-jsonl"), help: "The Banking77 soft-label teacher file: teacher-sim's answers and the queries.")
    var softJSONL = "../shared/data/banking77/teacher_soft.jsonl"
    @Option(help: "The embedding model directory.") var model = "models/all-MiniLM-L6-v2"
    @Option(help: "Directory of the distilld and teacher-sim executables (default: distill-bench's own).")
    var binDir: String?
    @Option(help: "Also write the JSON summary to this file.") var json: String?
    @Flag(help: "Keep the work directory (logs, data).") var keep = false

    /// The executables' directory; which build it is (debug or release) is its name.
    var binaries: URL {
        URL(fileURLWithPath: binDir ?? Bundle.main.executableURL!.deletingLastPathComponent().path)
    }

    /// A fresh work directory for the run's processes, logs and store.
    func workDirectory(_ name: String) throws -> URL {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("distill-\(name)-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        return directory
    }

    /// Prints the summary as JSON (and to --json), then the verdict lines; the exit status.
    func report(_ summary: JSONValue, verdict: [String]) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let text = String(decoding: try encoder.encode(summary), as: UTF8.self)
        print(text)
        if let json { try Data((text + "\n").utf8).write(to: URL(fileURLWithPath: json)) }
        print(verdict.joined(separator: "\n"))
        if summary["result"] != "pass" { throw ExitCode.failure }
    }
}

/// A check that did not hold: what was expected and what was seen.
struct ReliabilityFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

enum Reliability {
    static func log(_ message: String) {
        let clock = DateFormatter()
        clock.dateFormat = "HH:mm:ss"
        FileHandle.standardError.write(Data("[\(clock.string(from: Date()))] \(message)\n".utf8))
    }

    /// Polls `condition` every `every` until it returns a value; fails naming `what` after `timeout`.
    static func await<T>(
        _ what: String, timeout: Duration, every: Duration, _ condition: () async throws -> T?
    ) async throws -> T {
        let deadline = ContinuousClock.now + timeout
        while true {
            if let value = try await condition() { return value }
            guard ContinuousClock.now < deadline else { throw ReliabilityFailure("timed out after \(timeout) waiting for \(what)") }
            try await Task.sleep(for: every)
        }
    }

    /// The first promoted distillation run (the daemon trains on its own schedule); a failed run fails.
    static func awaitPromotion(_ daemon: Daemon, timeout: Duration) async throws -> DistillRunInfo {
        try await self.await("a distillation run to be promoted", timeout: timeout, every: .milliseconds(500)) {
            let runs = try await daemon.admin.distillStatus().runs
            if let failed = runs.first(where: { $0.outcome == .failed }) { throw ReliabilityFailure("a distillation run failed: \(failed)") }
            return runs.first { $0.outcome == .promoted }
        }
    }

    /// Least-squares slope of the points; 0 for fewer than two distinct x.
    static func slope(_ points: [(x: Double, y: Double)]) -> Double {
        guard points.count >= 2 else { return 0 }
        let n = Double(points.count)
        let meanX = points.map(\.x).reduce(0, +) / n, meanY = points.map(\.y).reduce(0, +) / n
        let sxx = points.map { ($0.x - meanX) * ($0.x - meanX) }.reduce(0, +)
        guard sxx > 0 else { return 0 }
        return points.map { ($0.x - meanX) * ($0.y - meanY) }.reduce(0, +) / sxx
    }

    static func seconds(_ duration: Duration) -> Double { ReplayBenchmark.seconds(duration) }

    /// A value rounded to `places` decimals, for the summary.
    static func rounded(_ value: Double, _ places: Int = 1) -> JSONValue {
        let scale = pow(10, Double(places))
        return .number((value * scale).rounded() / scale)
    }
}

/// A value concurrent tasks share, behind a lock.
final class Locked<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>

    init(_ value: Value) { mutex = Mutex(value) }

    func withLock<Result: Sendable>(_ body: (inout sending Value) -> Result) -> Result { mutex.withLock { body(&$0) } }
}

extension JSONValue {
    static func int(_ value: Int) -> JSONValue { .integer(Int64(value)) }
    static func counts(_ values: [String: Int]) -> JSONValue { .object(values.mapValues { .int($0) }) }
}

// MARK: - Processes

/// teacher-sim on the soft-label file.
struct TeacherSim {
    let process: ChildProcess
    let url: String

    static func start(_ options: ReliabilityOptions, in directory: URL, flags: [String] = []) async throws -> TeacherSim {
        let process = try BenchProcesses.start(
            executable: options.binaries.appendingPathComponent("teacher-sim"),
            arguments: ["--port", "0", "--soft-jsonl", ReplayBenchmark.absolute(options.softJSONL)] + flags,
            environment: ProcessInfo.processInfo.environment, directory: directory)
        return TeacherSim(process: process, url: try await process.address("http://"))
    }

    /// `PUT /sim/faults`: these faults from now on (rates not set are 0).
    func setFaults(_ faults: SimulatorFaults = SimulatorFaults()) async throws {
        var request = HTTPClientRequest(url: "\(url)/sim/faults")
        request.method = .PUT
        request.body = .bytes(try JSONEncoder().encode(faults))
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
        guard response.status == .ok else { throw ReliabilityFailure("PUT /sim/faults: \(response.status)") }
    }
}

/// distilld on a data directory, with an environment; started, killed and started again.
final class Daemon: Sendable {
    let dataDirectory: String
    let socket: String
    private let executable: URL
    private let directory: URL
    private let arguments: [String]
    private let environment: [String: String]
    private let current = Mutex<(process: ChildProcess?, http: String)>((nil, ""))
    /// Starts of any daemon of the run: each gets a log of its own.
    private static let starts = Mutex(0)

    /// The caller's DISTILL_ variables are dropped: the daemon runs on its defaults and `environment`.
    init(_ options: ReliabilityOptions, in directory: URL, dataDirectory: String, teacherURL: String, environment: [String: String]) {
        self.dataDirectory = dataDirectory
        self.directory = directory
        socket = directory.appendingPathComponent("distilld.sock").path
        executable = options.binaries.appendingPathComponent("distilld")
        arguments = ["--http", "127.0.0.1:0", "--socket", socket, "--data-dir", dataDirectory, "--teacher-url", "\(teacherURL)/v1"]
        self.environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("DISTILL_") }
            .merging(
                ["DISTILL_EMBEDDING_MODEL_DIR": ReplayBenchmark.absolute(options.model), "DISTILL_LOG_LEVEL": "warning"]
                    .merging(environment) { $1 }
            ) { $1 }
    }

    var database: String { (dataDirectory as NSString).appendingPathComponent("distill.sqlite") }
    var process: ChildProcess? { current.withLock { $0.process } }
    var isRunning: Bool { process?.isRunning ?? false }
    /// The admin API, over the Unix socket.
    var admin: DistillClient { DistillClient(.unix(socket)) }

    /// The public API over TCP, on `http`'s connections.
    func client(_ http: HTTPClient) -> DistillClient {
        DistillClient(.tcp(current.withLock { $0.http }), http: http)
    }

    /// Starts the daemon and waits until it listens on TCP and on its socket.
    @discardableResult
    func start() async throws -> Daemon {
        let start = Self.starts.withLock { $0 += 1; return $0 }
        let process = try BenchProcesses.start(
            executable: executable, arguments: arguments, environment: environment, directory: directory, log: "distilld-\(start)")
        let http = try await process.address("http://")
        _ = try await process.address("unix:")
        current.withLock { $0 = (process, http) }
        return self
    }

    /// SIGTERM, then SIGKILL if it has not exited after `grace`: its exit status.
    func stop(grace: Duration = .seconds(30)) async -> Int32 {
        guard let process else { return 0 }
        return await BenchProcesses.stop(process, grace: grace)
    }

    /// SIGKILL, and its exit status once it has gone.
    func kill() async -> Int32 {
        guard let process else { return 0 }
        process.signal(SIGKILL)
        return await BenchProcesses.stop(process)
    }

    func stderrTail() -> String { process?.stderrTail(lines: 30) ?? "" }

    /// What a soak watches: RSS (with its anonymous and file-backed parts, to tell the heap from
    /// mapped files), open descriptors, and the store's size on disk (database, WAL, shared memory).
    func sample() throws -> [String: JSONValue] {
        guard let pid = process?.pid else { throw ReliabilityFailure("distilld is not running") }
        let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        func kib(_ field: String) -> Int {
            status.split(separator: "\n").first { $0.hasPrefix("\(field):") }?.split(separator: " ", omittingEmptySubsequences: true)
                .dropFirst().first.flatMap { Int($0) } ?? 0
        }
        let fds = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count
        let bytes = ["", "-wal", "-shm"].compactMap {
            (try? FileManager.default.attributesOfItem(atPath: database + $0))?[.size] as? Int
        }.reduce(0, +)
        return [
            "rss_kib": .int(kib("VmRSS")), "rss_anon_kib": .int(kib("RssAnon")), "rss_file_kib": .int(kib("RssFile")),
            "fds": .int(fds), "sqlite_bytes": .int(bytes),
        ]
    }
}

// MARK: - The store, read beside the daemon

enum StoreCheck {
    /// PRAGMA integrity_check on a copy of the database and its WAL as a crash left them: the
    /// daemon's own recovery at restart then starts from the very same files. ["ok"] when intact.
    static func integrity(of database: String) throws -> [String] {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("distill-integrity-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        let copy = scratch.appendingPathComponent("copy.sqlite").path
        try FileManager.default.copyItem(atPath: database, toPath: copy)
        if FileManager.default.fileExists(atPath: database + "-wal") {
            try FileManager.default.copyItem(atPath: database + "-wal", toPath: copy + "-wal")
        }
        return try DatabaseQueue(path: copy).read { try String.fetchAll($0, sql: "PRAGMA integrity_check") }
    }

    /// A read-only query while the daemon runs (WAL readers do not block its writer).
    static func read<T>(_ database: String, _ query: (Database) throws -> T) throws -> T {
        var configuration = Configuration()
        configuration.readonly = true
        configuration.busyMode = .timeout(30)
        return try DatabaseQueue(path: database, configuration: configuration).read(query)
    }
}

// MARK: - The workload

/// A Banking77 query and the soft-label teacher's answer to it.
struct Query: Sendable, Hashable {
    var text: String
    var answer: String

    /// The distinct queries of the file (the daemon's exact key folds case and spacing: such
    /// duplicates are one query), in a seeded order.
    static func banking77(_ options: ReliabilityOptions) throws -> [Query] {
        var seen = Set<String>()
        var random = SplitMix64(seed: options.seed)
        return try TeacherDataset.loadSoftJSONL(path: options.softJSONL).entries.compactMap { entry in
            seen.insert(entry.text.lowercased().split(whereSeparator: \.isWhitespace).joined(separator: " ")).inserted
                ? Query(text: entry.text, answer: entry.answer) : nil
        }.shuffled(using: &random)
    }
}

/// Which request to send next. Kinds:
///   new      a query never sent before: the student answers it if confident, else the teacher
///   repeat   a query the teacher answered before: a cache hit (unless LRU evicted it)
///   refresh  a repeat with `x-distill-cache: refresh`: the teacher answers and replaces the entry
/// and any of them as a stream. New queries can be paced so that the pool lasts the whole run.
final class Workload: Sendable {
    enum Kind: String, Sendable { case new, `repeat`, refresh }

    struct Request: Sendable {
        var kind: Kind
        var query: Query
        var stream: Bool
        var headers: [String: String]
    }

    let pool: [Query]
    private let mix: [(kind: Kind, weight: Double)]
    private let streamShare: Double
    private let hotSet: Int
    private struct State {
        var nextNew = 0
        /// Queries the teacher answered (cached), oldest first.
        var answered: [Query] = []
        var pacing: (first: Int, count: Int, start: ContinuousClock.Instant, duration: Duration)?
    }
    private let state = Mutex(State())

    init(_ pool: [Query], mix: [(kind: Kind, weight: Double)], streamShare: Double, hotSet: Int = 1000) {
        (self.pool, self.mix, self.streamShare, self.hotSet) = (pool, mix, streamShare, hotSet)
    }

    /// From now on, new queries come out evenly over `duration`, so that the pool lasts.
    func startPacing(over duration: Duration) {
        state.withLock { $0.pacing = ($0.nextNew, pool.count - $0.nextNew, .now, duration) }
    }

    func takeNew() -> Query? {
        state.withLock { state in
            if let pacing = state.pacing {
                let share = min(1, Reliability.seconds(.now - pacing.start) / Reliability.seconds(pacing.duration))
                if state.nextNew >= pacing.first + Int(share * Double(pacing.count)) { return nil }
            }
            guard state.nextNew < pool.count else { return nil }
            defer { state.nextNew += 1 }
            return pool[state.nextNew]
        }
    }

    /// The next request, or nil when there is nothing to send right now.
    func pick(_ random: inout SplitMix64) -> Request? {
        var draw = random.nextUnit() * mix.map(\.weight).reduce(0, +)
        var kind = mix.first { draw -= $0.weight; return draw < 0 }?.kind ?? mix[mix.count - 1].kind
        let stream = random.nextUnit() < streamShare
        if kind == .new {
            if let query = takeNew() { return Request(kind: .new, query: query, stream: stream, headers: [:]) }
            kind = .repeat
        }
        let recent = state.withLock { $0.answered.suffix(hotSet) }
        guard let query = recent.randomElement(using: &random) else {
            return takeNew().map { Request(kind: .new, query: $0, stream: stream, headers: [:]) }
        }
        return Request(kind: kind, query: query, stream: stream, headers: kind == .refresh ? [DistillHeader.cache: "refresh"] : [:])
    }

    func learned(_ query: Query) { state.withLock { $0.answered.append(query) } }

    /// The queries the teacher answered, oldest first.
    var answered: [Query] { state.withLock { $0.answered } }

    /// Queries not sent yet.
    var unseen: ArraySlice<Query> { pool[state.withLock { $0.nextNew }...] }
}

/// One request's outcome, as the checks read it.
struct LoadReply: Sendable, CustomStringConvertible {
    var source: DistillSource?
    var requestID: String?
    var answer: String?
    /// nil: a whole answer came (for a stream, up to `[DONE]`).
    var failure: DistillClientError?
    var elapsed: Duration
    var stream: Bool

    var ok: Bool { failure == nil }
    var errorCode: String? { failure?.apiError?.code }
    /// The HTTP status (an error event in a stream came with a 200); nil when nothing came.
    var status: Int? {
        guard let failure else { return 200 }
        return failure.apiError?.status
    }
    /// No answer and no error from distilld: the connection broke, as a kill breaks it.
    var cut: Bool {
        if case .connectionFailed = failure { return true }
        return false
    }

    var description: String {
        "\(status.map(String.init) ?? "no answer") source=\(source?.rawValue ?? "none") code=\(errorCode ?? "none") "
            + "id=\(requestID ?? "none")" + (failure.map { ": \($0)" } ?? "")
    }

    /// Sends one query, plain or streamed, and reads the whole answer.
    static func ask(
        _ client: DistillClient, _ text: String, stream: Bool = false, headers: [String: String] = [:], requestID: String? = nil
    ) async -> LoadReply {
        var headers = headers
        if let requestID { headers[DistillHeader.requestID] = requestID }
        let request = ChatCompletionRequest(model: "gpt-test", user: text)
        let started = ContinuousClock.now
        var reply = LoadReply(elapsed: .zero, stream: stream)
        do {
            if stream {
                let chunks = try await client.stream(request, headers: headers)
                (reply.source, reply.requestID) = (chunks.info.source, chunks.info.requestID)
                reply.answer = try await chunks.collect().answer
            } else {
                let answer = try await client.complete(request, headers: headers)
                (reply.source, reply.requestID, reply.answer) = (answer.info.source, answer.info.requestID, answer.answer)
            }
        } catch {
            reply.failure = error as? DistillClientError ?? .connectionFailed(address: client.address, reason: "\(error)")
        }
        reply.elapsed = .now - started
        return reply
    }
}

/// Counts of what a load sent and got.
final class Tally: Sendable {
    struct Counts {
        var requests = 0
        var bySource: [String: Int] = [:]
        var byKind: [String: Int] = [:]
        var streams = 0
        /// The first few failures, described.
        var errors: [String] = []
        var errorCount = 0
        var latencies: [Double] = []
    }
    private let state = Mutex(Counts())

    var counts: Counts { state.withLock { $0 } }

    func add(_ kind: Workload.Kind, _ reply: LoadReply) {
        state.withLock { counts in
            counts.requests += 1
            counts.byKind[kind.rawValue, default: 0] += 1
            counts.bySource[reply.source?.rawValue ?? "none", default: 0] += 1
            if reply.stream { counts.streams += 1 }
            counts.latencies.append(Reliability.seconds(reply.elapsed))
        }
    }

    func error(_ description: String) {
        state.withLock { counts in
            counts.errorCount += 1
            if counts.errors.count < 20 { counts.errors.append(description) }
        }
    }
}

/// Sends new queries, `workers` at a time (a quarter as streams), until the teacher has answered
/// `count` of them (a paraphrase the cache serves teaches the student nothing); every answer must come.
func teach(_ daemon: Daemon, _ workload: Workload, count: Int, workers: Int, seed: UInt64, tally: Tally, http: HTTPClient) async {
    let taught = Locked(0)
    await withTaskGroup(of: Void.self) { group in
        for index in 0..<workers {
            group.addTask {
                var random = SplitMix64(seed: seed &* 1000 &+ UInt64(index))
                while taught.withLock({ $0 < count }), let query = workload.takeNew() {
                    let reply = await LoadReply.ask(daemon.client(http), query.text, stream: random.nextUnit() < 0.25)
                    tally.add(.new, reply)
                    if !reply.ok {
                        tally.error("teach \(query.text.debugDescription): \(reply)")
                    } else if reply.source == .teacher {
                        taught.withLock { $0 += 1 }
                        workload.learned(query)
                    }
                }
            }
        }
    }
}
