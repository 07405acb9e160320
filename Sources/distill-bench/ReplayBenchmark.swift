import ArgumentParser
import ChildProcess
import DistillAPI
import DistillClient
import Foundation
import SeededRandom
import Synchronization
import TeacherSimulator

/// The headline benchmark: a teacher file's queries replayed through real `teacher-sim` and
/// `distilld` processes; who answered, how well, how fast, and what the teacher cost.
struct ReplayBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "Replay a teacher file's queries through distilld and report cost, quality and latency by source.",
        discussion: """
            Starts teacher-sim on the teacher file and distilld on a fresh store with its default \
            configuration, sends a deterministic stream — every unique query once in a seeded order, with \
            repeats of earlier ones (Zipf-like popularity) making up --repeat-rate of it — and reads each \
            response's x-distill-source, similarity, confidence and answer. The daemon re-distills its \
            student on its own schedule; the benchmark never trains. Every DISTILL_ variable of the \
            caller's environment is dropped, so the daemon runs on its built-in defaults (--daemon-env \
            sets some). Requests go in rounds of at most --concurrency, and no larger than the teacher \
            answers still missing to the daemon's next training (it trains once it has logged \
            distill.min_rows, then distill.min_new_rows more); when one is due, the replay holds the \
            stream until the daemon has trained and decided, so that the run does not depend on the \
            machine's speed (--free-running does neither).

            Agreement is the share of answers equal to the teacher file's answer to the query (up to case \
            and spacing); accuracy is against the file's gold label. Writes <report>/replay-….json (every \
            figure, per window too, and each request's source) and a self-contained .html with charts; \
            prints a one-screen summary (or, with --json, the whole-run figures). cost_saved is the share of \
            the teacher-only cost saved: 1 − teacher tokens / the tokens the teacher would have charged \
            for every request.
            """)

    enum Transport: String, ExpressibleByArgument, CaseIterable {
        case http, unix
    }

    /// The order in which unique queries first arrive.
    enum Order: String, ExpressibleByArgument, CaseIterable {
        /// Seeded, shuffled.
        case shuffled
        /// The file's: Banking77's files hold the train rows by intent, then the test rows (a drift replay).
        case grouped
    }

    @Option(name: .customLong("soft-jsonl"), help: "Soft-label teacher file: JSON Lines of {text, gold, top}.")
    var softJSONL: String?
    @Option(name: .customLong("gpt4-csv"), help: "Hard-answer teacher file: CSV with text, gold, teacher columns.")
    var gpt4CSV: String?
    @Option(help: "A system prompt sent with every request (it is part of the cache scope).") var systemPrompt: String?
    @Option(help: "Share of the stream that repeats an earlier query, in [0, 1).") var repeatRate = 0.3
    @Option(help: "Seed of the stream (and of teacher-sim's latency draws).") var seed: UInt64 = 1
    @Option(help: "Order of the unique queries' first arrivals: shuffled (seeded) or grouped (the file's order).")
    var order = Order.shuffled
    @Option(help: "Requests in flight at once (sent in rounds of this many unless --free-running).") var concurrency = 64
    @Option(help: "Requests per window of the report.") var window = 1000
    @Option(help: "Directory of the JSON and HTML reports.") var report = "var/reports"
    @Flag(help: "Print the whole-run figures as JSON instead of the summary.") var json = false

    @Option(help: "Send over TCP (http) or distilld's Unix socket (unix).") var transport = Transport.http
    @Option(help: "Use only this many of the file's unique queries (a seeded sample); default all.") var queries: Int?
    @Option(help: "Exponent s of the repeats' popularity: the query of rank r is drawn ∝ 1/r^s.") var zipfExponent = 1.0
    // 500 ms: a round's last requests reach the cache lookup only once the daemon has embedded those before
    // them (64 texts take 100–300 ms on 2 shared cores); the first teacher answers must not be cached by then, or
    // which requests hit the cache differs from run to run (at 200 ms it did, for 1% of the requests).
    @Option(name: .customLong("teacher-latency-ms"), help: "teacher-sim's fixed latency per request.")
    var teacherLatency = 500.0
    @Option(name: .customLong("teacher-jitter-ms"), help: "teacher-sim's extra latency, uniform in [0, N].")
    var teacherJitter = 200.0
    @Option(name: .customLong("price-per-1k"), help: "The teacher's price per 1,000 tokens (prompt and completion).")
    var pricePer1k = 0.01
    @Option(name: .customLong("daemon-env"), help: "Extra KEY=VALUE for distilld's environment (repeatable), e.g. DISTILL_STUDENT_TARGET_AGREEMENT=0.97.")
    var daemonEnvironment: [String] = []
    @Option(help: "The embedding model directory.") var model = "models/all-MiniLM-L6-v2"
    @Option(help: "The model name in each request.") var modelName = "gpt-4o-mini"
    @Option(help: "Directory of the distilld and teacher-sim executables (default: distill-bench's own).")
    var binDir: String?
    @Option(help: "A previous replay's JSON report: print the share of requests answered by the same source.")
    var compare: String?
    @Flag(help: "Keep --concurrency requests in flight and never hold the stream for the daemon's retraining (the run then depends more on the machine's speed).")
    var freeRunning = false
    @Flag(help: "Keep the run directory (store, logs) instead of removing it after a successful run.") var keep = false

    func validate() throws {
        guard (softJSONL == nil) != (gpt4CSV == nil) else {
            throw ValidationError("Give exactly one teacher file: --soft-jsonl FILE or --gpt4-csv FILE.")
        }
        guard (0..<1).contains(repeatRate) else { throw ValidationError("--repeat-rate must be in [0, 1).") }
        guard concurrency >= 1 else { throw ValidationError("--concurrency must be at least 1.") }
        guard window >= 1 else { throw ValidationError("--window must be at least 1.") }
        guard queries.map({ $0 >= 1 }) ?? true else { throw ValidationError("--queries must be at least 1.") }
        guard zipfExponent >= 0, teacherLatency >= 0, teacherJitter >= 0, pricePer1k >= 0 else {
            throw ValidationError("--zipf-exponent, latencies and --price-per-1k must be ≥ 0.")
        }
        for entry in daemonEnvironment where !entry.contains("=") {
            throw ValidationError("--daemon-env takes KEY=VALUE; got '\(entry)'.")
        }
    }

    func run() async throws {
        let teacherFile = (softJSONL ?? gpt4CSV)!
        let dataset = try softJSONL.map { try TeacherDataset.loadSoftJSONL(path: $0) } ?? TeacherDataset.loadGPT4CSV(path: gpt4CSV!)
        var workload = Self.uniqueQueries(dataset)
        guard !workload.isEmpty else { throw BenchError("\(teacherFile) has no queries") }
        if let queries, queries < workload.count {
            var random = SplitMix64(seed: seed ^ 0x5EED_0F_5A_4D_93)
            workload = random.permutation(workload.count).prefix(queries).sorted().map { workload[$0] }
        }
        let stream = ReplayStream(
            uniqueQueries: workload.count, repeatRate: repeatRate, seed: seed, zipfExponent: zipfExponent,
            grouped: order == .grouped)
        let binaries = URL(fileURLWithPath: binDir ?? Bundle.main.executableURL!.deletingLastPathComponent().path)

        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("distill-replay-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let interrupt = BenchProcesses.killAllOnInterrupt()
        defer { interrupt.forEach { $0.cancel() } }
        note("replaying \(stream.order.count) requests (\(workload.count) unique queries, \(stream.repeats) repeats) of \(teacherFile)")

        let started = Date()
        let result: RunResult
        do {
            result = try await replay(
                stream: stream, workload: workload, teacherFile: teacherFile, binaries: binaries, directory: directory)
        } catch {
            note("the run directory (store and logs) is kept: \(directory.path)")
            throw error
        }
        if keep { note("run directory: \(directory.path)") } else { try? FileManager.default.removeItem(at: directory) }

        let outcomes = result.outcomes
        let seconds = result.seconds
        var report = ReplayReport(
            outcomes: outcomes, queries: workload, window: window, pricePer1kTokens: pricePer1k,
            run: runInfo(
                teacherFile: teacherFile, stream: stream, uniqueQueries: workload.count, started: started, seconds: seconds,
                heldSeconds: result.heldSeconds))
        report.distillRuns = result.distillRuns
        report.student = result.student
        report.teacherCalls = result.metrics.map {
            ReplayReport.teacherCallReasons(exposition: $0, teacherAnswers: outcomes.count { $0.source == .teacher })
        }
        let paths = try write(report, teacherFile: teacherFile, started: started)
        let comparison = try compare.map { try Self.sameSources(report.sources, previousReport: $0) }

        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            print(String(decoding: try encoder.encode(report.whole), as: UTF8.self))
            note("report: \(paths.html)")
        } else {
            print(summary(report, teacherFile: teacherFile, seconds: seconds, paths: paths, comparison: comparison))
        }
        if report.errors > 0 {
            throw BenchError("\(report.errors) of \(outcomes.count) requests failed (see the report); the figures leave them out")
        }
    }

    // MARK: - The run

    struct RunResult {
        var outcomes: [ReplayOutcome]
        var seconds: Double
        var distillRuns: [ReplayDistillRun]
        /// What served each scope when the stream ended (nil if the admin API did not say).
        var student: StudentStatus?
        /// How long the stream was held while the daemon retrained (nil: free running).
        var heldSeconds: Double?
        /// distilld's Prometheus exposition when the stream ended (nil if it could not be read).
        var metrics: String?
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) * 1e-18
    }

    /// Starts the two processes, sends the stream, stops them; the outcomes in stream order.
    func replay(
        stream: ReplayStream, workload: [ReplayQuery], teacherFile: String, binaries: URL, directory: URL
    ) async throws -> RunResult {
        // The caller's DISTILL_ variables are dropped: the daemon runs on its defaults.
        var environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("DISTILL_") }
        let simulator = try BenchProcesses.start(
            executable: binaries.appendingPathComponent("teacher-sim"),
            arguments: [
                "--port", "0", softJSONL == nil ? "--gpt4-csv" : "--soft-jsonl", Self.absolute(teacherFile),
                "--latency-ms", String(teacherLatency), "--jitter-ms", String(teacherJitter), "--seed", String(seed),
            ],
            environment: environment, directory: directory)
        return try await BenchProcesses.whileRunning(simulator) {
            let simulatorURL = try await simulator.address("http://")
            environment["DISTILL_EMBEDDING_MODEL_DIR"] = Self.absolute(model)
            for entry in daemonEnvironment {
                let parts = entry.split(separator: "=", maxSplits: 1)
                environment[String(parts[0])] = parts.count > 1 ? String(parts[1]) : ""
            }
            let socket = directory.appendingPathComponent("distilld.sock").path
            let daemon = try BenchProcesses.start(
                executable: binaries.appendingPathComponent("distilld"),
                arguments: [
                    "--http", "127.0.0.1:0", "--socket", socket, "--data-dir", directory.appendingPathComponent("data").path,
                    "--teacher-url", "\(simulatorURL)/v1",
                ],
                environment: environment, directory: directory)
            return try await BenchProcesses.whileRunning(daemon) {
                let http = try await daemon.address("http://")
                _ = try await daemon.address("unix:")
                let address: DistillClient.Address = switch transport {
                case .http: .tcp(http)
                case .unix: .unix(socket)
                }
                return try await send(stream: stream, workload: workload, address: address, socket: socket, daemon: daemon)
            }
        }
    }

    /// Sends the stream with `concurrency` requests in flight, drawing the progress bar; then asks
    /// the daemon's admin API what its distiller did meanwhile.
    func send(
        stream: ReplayStream, workload: [ReplayQuery], address: DistillClient.Address, socket: String, daemon: ChildProcess
    ) async throws -> RunResult {
        // Its pool lets idle connections go before distilld closes them: the stream held while the daemon trains
        // left them idle about as long as its header timeout, and the first requests after it failed now and then.
        let client = DistillClient.makeHTTPClient(readTimeout: .seconds(10 * 60), connections: concurrency)
        let admin = DistillClient(.unix(socket), timeout: .seconds(30), http: client)
        let runStart = Date()
        let sender = RequestSender(
            client: DistillClient(address, timeout: .seconds(600), http: client), modelName: modelName, systemPrompt: systemPrompt,
            queries: workload, daemon: daemon, runStart: runStart)
        let progress = ReplayProgress(total: stream.order.count)
        let state = ReplayState(count: stream.order.count)
        var pacing = freeRunning ? nil : await ReplayPacing { await Self.admin(APIPath.distill) { try await admin.distillStatus() } }
        let ticker = Task { await progress.run() }
        defer { ticker.cancel() }
        let start = ContinuousClock.now
        do {
            try await sender.openConnections(concurrency)
            if pacing == nil {
                // Free running: `concurrency` workers, each sending the next request as soon as it is done.
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for _ in 0..<concurrency {
                        group.addTask {
                            while let position = state.take() {
                                let outcome = try await sender.send(query: stream.order[position])
                                state.record(outcome, at: position)
                                progress.record(outcome.source)
                            }
                        }
                    }
                    try await group.waitForAll()
                }
            } else {
                // Rounds of requests sent together: which requests are in flight at once, and so which
                // teacher answers a training sees, depends on the stream alone.
                var teacherAnswers = 0
                var round = 0
                while round < stream.order.count {
                    await pacing!.betweenRounds(teacherAnswers: teacherAnswers)
                    let end = min(round + pacing!.roundSize(teacherAnswers: teacherAnswers, concurrency: concurrency), stream.order.count)
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        for position in round..<end {
                            group.addTask {
                                let outcome = try await sender.send(query: stream.order[position])
                                state.record(outcome, at: position)
                                progress.record(outcome.source)
                            }
                        }
                        try await group.waitForAll()
                    }
                    teacherAnswers += state.outcomes(round..<end).count { $0.source == .teacher }
                    round = end
                }
            }
        } catch {
            try? await client.shutdown()
            throw error
        }
        let elapsed = ContinuousClock.now - start
        ticker.cancel()
        progress.finish()
        let outcomes = state.outcomes
        let distill = await Self.admin(APIPath.distill) { try await admin.distillStatus() }
        let student = await Self.admin(APIPath.student) { try await admin.studentStatus() }
        let metrics = await Self.admin(APIPath.metrics) { try await admin.metrics() }
        try await client.shutdown()

        // Requests completed by a time: places the distiller's runs in the stream.
        func position(_ date: Date?) -> Int? {
            date.map { date in outcomes.count { $0.completedAt <= date.timeIntervalSince(runStart) } }
        }
        let runs = (distill?.runs ?? []).sorted { $0.id < $1.id }.map { run in
            ReplayDistillRun(
                id: run.id, trigger: run.trigger.rawValue, outcome: run.outcome?.rawValue, reason: run.reason, version: run.version, rows: run.rows,
                trainingSeconds: run.startedAt.flatMap { started in run.finishedAt.map { $0.timeIntervalSince(started) } },
                startedAtRequest: position(run.startedAt), finishedAtRequest: position(run.finishedAt))
        }
        return RunResult(
            outcomes: outcomes, seconds: Self.seconds(elapsed), distillRuns: runs, student: student,
            heldSeconds: pacing.map { Self.seconds($0.held) }, metrics: metrics)
    }

    /// An admin API answer; nil (with a note) when it cannot be had.
    static func admin<T>(_ path: APIPath, _ call: () async throws -> T) async -> T? {
        do {
            return try await call()
        } catch {
            note("GET \(path): \(error)")
            return nil
        }
    }

    /// The file's distinct query texts, in file order, each with the answer teacher-sim gives it.
    static func uniqueQueries(_ dataset: TeacherDataset) -> [ReplayQuery] {
        var seen = Set<String>()
        return dataset.entries.compactMap { entry in
            guard seen.insert(entry.text).inserted, let answer = dataset.lookup(entry.text) else { return nil }
            return ReplayQuery(text: entry.text, gold: answer.gold, teacher: answer.answer)
        }
    }

    static func absolute(_ path: String) -> String {
        let full = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        return (full as NSString).standardizingPath
    }

    // MARK: - Output

    func runInfo(
        teacherFile: String, stream: ReplayStream, uniqueQueries: Int, started: Date, seconds: Double, heldSeconds: Double?
    ) -> [String: String] {
        [
            "command": (["distill-bench"] + CommandLine.arguments.dropFirst()).joined(separator: " "),
            "teacher_file": teacherFile,
            "started": ISO8601DateFormatter().string(from: started),
            "machine": Self.machine(),
            "seed": String(seed),
            "order": order.rawValue,
            "repeat_rate": String(repeatRate),
            "zipf_exponent": String(zipfExponent),
            "unique_queries": String(uniqueQueries),
            "repeats": String(stream.repeats),
            "concurrency": String(concurrency),
            "transport": transport.rawValue,
            "window": String(window),
            "teacher_latency_ms": "\(teacherLatency) + uniform [0, \(teacherJitter)]",
            "daemon_environment": daemonEnvironment.joined(separator: " "),
            "seconds": String(format: "%.1f", seconds),
            "pacing": heldSeconds.map { String(format: "held while the daemon retrained: %.1f s in all", $0) } ?? "free running",
            "requests_per_second": String(format: "%.1f", Double(stream.order.count) / seconds),
        ]
    }

    static func machine() -> String {
        let cpu = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))?.split(separator: "\n")
            .first { $0.hasPrefix("model name") }?.split(separator: ":", maxSplits: 1).last?.trimmingCharacters(in: .whitespaces)
        return "\(ProcessInfo.processInfo.activeProcessorCount) × \(cpu ?? "unknown CPU"), \(ProcessInfo.processInfo.physicalMemory >> 30) GiB"
    }

    func write(_ report: ReplayReport, teacherFile: String, started: Date) throws -> (json: String, html: String) {
        try FileManager.default.createDirectory(atPath: self.report, withIntermediateDirectories: true)
        let stamp = DateFormatter()
        stamp.dateFormat = "yyyyMMdd-HHmmss"
        stamp.locale = Locale(identifier: "en_US_POSIX")
        let name = URL(fileURLWithPath: teacherFile).deletingPathExtension().lastPathComponent
        let base = try Self.claimReportBase((self.report as NSString).appendingPathComponent(
            "replay-\(name)\(order == .grouped ? "-grouped" : "")-s\(seed)-\(stamp.string(from: started))"))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(report).write(to: URL(fileURLWithPath: base + ".json"))
        let title = "Distill replay: \(name), \(report.whole.requests) requests"
        try Data(report.html(title: title).utf8).write(to: URL(fileURLWithPath: base + ".html"))
        return (base + ".json", base + ".html")
    }

    /// `stem`, or `stem-2`, `stem-3`, … when a replay started in the same second (two run side by side) took it: the
    /// JSON file's name is claimed with O_EXCL, so that neither report overwrites the other.
    static func claimReportBase(_ stem: String) throws -> String {
        var attempt = 1
        while true {
            let base = attempt == 1 ? stem : "\(stem)-\(attempt)"
            let descriptor = open(base + ".json", O_CREAT | O_EXCL | O_WRONLY, 0o644)
            if descriptor >= 0 {
                close(descriptor)
                return base
            }
            guard errno == EEXIST else { throw BenchError("cannot create \(base).json: \(String(cString: strerror(errno)))") }
            attempt += 1
        }
    }

    /// The share of requests whose source equals the previous report's, position by position.
    static func sameSources(_ sources: String, previousReport path: String) throws -> (share: Double, compared: Int) {
        guard let data = FileManager.default.contents(atPath: path),
            let object = try JSONSerialization.jsonObject(with: data) as? [String: Any],
            let previous = object["sources"] as? String
        else { throw BenchError("\(path) is not a replay report (no \"sources\")") }
        let pairs = zip(sources.utf8, previous.utf8)
        let compared = min(sources.utf8.count, previous.utf8.count)
        return (compared == 0 ? 0 : Double(pairs.count { $0 == $1 }) / Double(compared), compared)
    }

    func summary(
        _ report: ReplayReport, teacherFile: String, seconds: Double, paths: (json: String, html: String),
        comparison: (share: Double, compared: Int)?
    ) -> String {
        let w = report.whole
        let pct = ReplayReport.percent
        var lines = [
            "Distill replay of \(teacherFile): \(w.requests) requests (\(report.run["unique_queries"]!) unique, "
                + "\(report.run["repeats"]!) repeats), seed \(seed), concurrency \(concurrency) over \(transport.rawValue), "
                + String(format: "%.0f s (%.0f requests/s)", seconds, Double(w.requests) / seconds)
                + (report.run["pacing"].map { ", \($0)" } ?? ""),
            "",
            "  source    share   agrees with teacher      p50       p99",
        ]
        for source in DistillSource.allCases {
            let latency = w.latencyMilliseconds[source.rawValue]
            lines.append(
                "  " + source.rawValue.padding(toLength: 8, withPad: " ", startingAt: 0)
                    + pct(ReplayReport.share(w.share, source)).leftPadded(7)
                    + pct(ReplayReport.agreement(w.agreement, source)).leftPadded(22)
                    + (latency.map { ReplayReport.ms($0.p50) } ?? "–").leftPadded(9)
                    + (latency.map { ReplayReport.ms($0.p99) } ?? "–").leftPadded(10))
        }
        lines.append("  overall " + "".leftPadded(7) + pct(w.agreement.overall).leftPadded(22))
        lines.append("")
        lines.append("  accuracy against gold: \(pct(w.accuracyGold.overall)) (the teacher's own on this stream: \(pct(w.accuracyGold.teacherOnly)))")
        lines.append(
            "  teacher tokens: \(report.cost.teacherTokens) against \(report.cost.baselineTokens) teacher-only; cost "
                + String(format: "%.2f against %.2f at %g per 1k tokens", report.cost.teacherCost, report.cost.baselineCost, pricePer1k)
                + ": \(pct(w.costSaved)) saved")
        lines.append("  teacher share per \(window) requests: \(Self.sparkline(report.windows.map(\.figures.share.teacher)))")
        lines.append("  agreement per \(window) requests:     \(Self.sparkline(report.windows.map { $0.figures.agreement.overall ?? 0 }))")
        let studentAgreement = report.windows.compactMap(\.figures.agreement.student)
        lines.append(
            "  student's agreement per \(window):   \(Self.sparkline(studentAgreement))"
                + (studentAgreement.min().map { " (lowest \(pct($0)))" } ?? ""))
        if let shares = report.teacherCallShares { lines.append("  teacher answers, as a share of requests: \(shares)") }
        let promoted = report.distillRuns.filter { $0.outcome == "promoted" }
        lines.append(
            "  re-distillation: \(report.distillRuns.count) runs (\(report.distillRuns.count { $0.trigger == "shift" }) due sooner on a shift), \(promoted.count) promoted"
                + (promoted.isEmpty ? "" : " (at requests \(promoted.compactMap { $0.finishedAtRequest.map(String.init) }.joined(separator: ", ")))"))
        for scope in report.student?.scopes ?? [] {
            lines.append(
                "  student v\(scope.version)\(scope.serving ? "" : " (suspended)"): τ \(scope.threshold.map { String(format: "%.3f", $0) } ?? "none"), "
                    + "holdout coverage \(pct(scope.coverage)) at agreement \(pct(scope.holdoutAgreement)), "
                    + "live agreement \(pct(scope.liveAgreement)) over \(scope.audits) audits, "
                    + "\(scope.novelAbstentions ?? 0) novelty abstentions")
        }
        if let first = report.failures.first {
            lines.append("  FAILED requests: \(report.errors); the first, request \(first.request): \(first.error)")
        }
        if let comparison {
            lines.append("  same source as \(compare!): \(pct(comparison.share)) of \(comparison.compared) requests")
        }
        lines.append("")
        lines.append("report: \(paths.html)")
        lines.append("        \(paths.json)")
        return lines.joined(separator: "\n")
    }

    /// Values in [0, 1] as block characters, one per window.
    static func sparkline(_ values: [Double]) -> String {
        let blocks = Array("▁▂▃▄▅▆▇█")
        return String(values.map { blocks[min(blocks.count - 1, max(0, Int(($0 * Double(blocks.count)).rounded(.down))))] })
    }
}

extension String {
    func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: " ", count: width - count) + self
    }
}

private func note(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}

/// Hands out stream positions to the workers and keeps each outcome at its position.
final class ReplayState: Sendable {
    private let state: Mutex<(next: Int, outcomes: [ReplayOutcome?])>

    init(count: Int) { state = Mutex((0, Array(repeating: nil, count: count))) }

    func take() -> Int? {
        state.withLock { state in
            guard state.next < state.outcomes.count else { return nil }
            defer { state.next += 1 }
            return state.next
        }
    }

    func record(_ outcome: ReplayOutcome, at position: Int) { state.withLock { $0.outcomes[position] = outcome } }

    var outcomes: [ReplayOutcome] { state.withLock { $0.outcomes.map { $0! } } }

    func outcomes(_ positions: Range<Int>) -> [ReplayOutcome] { state.withLock { $0.outcomes[positions].map { $0! } } }
}

/// Sends one query and reads back the answer and distilld's headers.
struct RequestSender: Sendable {
    let client: DistillClient
    let modelName: String
    let systemPrompt: String?
    let queries: [ReplayQuery]
    let daemon: ChildProcess
    let runStart: Date

    /// Opens `count` connections (GET /healthz on each) before the stream. Opened by the first round
    /// itself, its requests reached the daemon over a few hundred milliseconds, the last ones after
    /// the first teacher answers were cached: which of them were cache hits differed from run to run.
    func openConnections(_ count: Int) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<count {
                group.addTask { _ = try await client.health() }
            }
            try await group.waitForAll()
        }
    }

    func send(query: Int) async throws -> ReplayOutcome {
        var outcome = ReplayOutcome(query: query)
        let started = ContinuousClock.now
        let reply: ChatReply?
        do {
            reply = try await client.complete(ChatCompletionRequest(model: modelName, system: systemPrompt, user: queries[query].text))
        } catch let error as DistillClientError where error.fromDaemon {
            outcome.error = "\(error)"
            reply = nil
        } catch {
            // A daemon that died ends the run; anything else is this request's failure.
            guard daemon.isRunning else {
                throw BenchError("distilld exited during the replay; the end of its log (\(daemon.stderrPath)):\n\(daemon.stderrTail())")
            }
            outcome.error = "\(error)"
            return outcome
        }
        let elapsed = ContinuousClock.now - started
        outcome.completedAt = Date().timeIntervalSince(runStart)
        outcome.latencyMilliseconds = Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) * 1e-15
        guard let reply else { return outcome }
        guard let answer = reply.answer, let source = reply.info.source else {
            outcome.error = "distilld answered without \(reply.answer == nil ? "an answer" : DistillHeader.source)"
            return outcome
        }
        outcome.source = source
        outcome.answer = answer
        outcome.similarity = reply.info.similarity
        outcome.confidence = reply.info.confidence
        if source == .teacher, let usage = reply.completion.usage { outcome.tokens = usage.totalTokens }
        return outcome
    }
}

/// The progress bar on stderr: redrawn in place on a terminal, a line per 10% otherwise.
final class ReplayProgress: Sendable {
    private let total: Int
    private let started = ContinuousClock.now
    private let isTerminal = isatty(STDERR_FILENO) == 1
    private let counts = Mutex<(done: Int, cache: Int, student: Int, teacher: Int, failed: Int, lastTenth: Int)>((0, 0, 0, 0, 0, 0))

    init(total: Int) { self.total = total }

    func record(_ source: DistillSource?) {
        let line: String? = counts.withLock { c in
            c.done += 1
            switch source {
            case .cache?: c.cache += 1
            case .student?: c.student += 1
            case .teacher?: c.teacher += 1
            case nil: c.failed += 1
            }
            guard !isTerminal, c.done * 10 / total > c.lastTenth else { return nil }
            c.lastTenth = c.done * 10 / total
            return render(c)
        }
        if let line { FileHandle.standardError.write(Data((line + "\n").utf8)) }
    }

    /// Redraws the bar a few times a second until cancelled (terminals only).
    func run() async {
        guard isTerminal else { return }
        while !Task.isCancelled {
            draw()
            try? await Task.sleep(for: .milliseconds(250))
        }
    }

    func finish() {
        if isTerminal {
            draw()
            FileHandle.standardError.write(Data("\n".utf8))
        }
    }

    private func draw() {
        let line = counts.withLock { render($0) }
        FileHandle.standardError.write(Data("\r\u{1B}[K\(line)".utf8))
    }

    private func render(_ c: (done: Int, cache: Int, student: Int, teacher: Int, failed: Int, lastTenth: Int)) -> String {
        let width = 30
        let filled = c.done * width / max(total, 1)
        let seconds = (ContinuousClock.now - started).components.seconds
        let rate = seconds > 0 ? Double(c.done) / Double(seconds) : 0
        let share = { (n: Int) in String(format: "%2.0f%%", c.done == 0 ? 0 : Double(n) * 100 / Double(c.done)) }
        let eta = rate > 0 ? Int(Double(total - c.done) / rate) : 0
        return "[\(String(repeating: "█", count: filled))\(String(repeating: "░", count: width - filled))] "
            + "\(c.done)/\(total)  cache \(share(c.cache))  student \(share(c.student))  teacher \(share(c.teacher))"
            + (c.failed > 0 ? "  failed \(c.failed)" : "")
            + String(format: "  %.0f req/s  ETA %d:%02d", rate, eta / 60, eta % 60)
    }
}
