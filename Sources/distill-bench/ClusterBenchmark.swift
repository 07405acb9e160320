import ArgumentParser
import AsyncHTTPClient
import ChildProcess
import DistillAPI
import DistillClient
import Foundation
import Synchronization

/// Two distilld nodes on one PostgreSQL beside one distilld on SQLite, in the same run: what
/// sharing a store costs and how fast the nodes follow each other.
struct ClusterBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cluster",
        abstract: "PostgreSQL nodes against SQLite: cross-node propagation, exact-hit throughput, the teacher path's commit.",
        discussion: """
            distill-bench cluster --bin-dir .build/release      (needs Debian's postgresql: scripts/bootstrap)

            Starts a scratch PostgreSQL server (initdb on a free loopback port, as ScratchPostgres \
            does for the tests), teacher-sim (no latency), distilld nodes A and B on one database \
            of it and distilld on SQLite, all asking that teacher-sim; re-distillation is off. Then:

            propagation   --propagations Banking77 queries, one at a time, sent to A with \
                          x-distill-cache: refresh (the teacher answers, A commits and caches); \
                          from A's answer, B's admin API is polled until B holds the entry, then B \
                          is asked: an exact hit. The time from A's answer to B's hit, p50/p99.
            teacher path  --teacher-requests new queries per store, one at a time, with refresh \
                          (every one a teacher answer committed before it is returned), to A and to \
                          the SQLite daemon in --rounds alternating rounds: what a PostgreSQL commit \
                          costs against SQLite's, as client-side latency p50/p99.
            exact hits    200 queries cached on each store; then --workers clients send them for \
                          --hit-seconds per node (A, B, SQLite), in --rounds alternating rounds: \
                          hits are served from memory, so the store should not matter.

            Prints a JSON summary (also to --json FILE).
            """)

    @OptionGroup var options: ReliabilityOptions
    @Option(help: "Answers cached through node A and timed until node B serves them.") var propagations = 200
    @Option(help: "Teacher-answered requests per store.") var teacherRequests = 300
    @Option(help: "Seconds of exact hits per node, all rounds together.") var hitSeconds = 15.0
    @Option(help: "Clients sending exact hits at once.") var workers = 4
    @Option(help: "Rounds the stores alternate in, so that the machine's other load falls on each alike.") var rounds = 3

    func run() async throws {
        let interrupt = BenchProcesses.killAllOnInterrupt()
        defer { interrupt.forEach { $0.cancel() } }
        let work = try options.workDirectory("cluster")
        Reliability.log("cluster: \(options.binaries.lastPathComponent) build in \(options.binaries.path), work directory \(work.path)")
        let http = DistillClient.makeHTTPClient(connections: workers + 2)
        var postgres: ScratchPostgres?
        var simulator: TeacherSim?
        var daemons: [Daemon] = []
        var summary: JSONValue
        do {
            postgres = try await ScratchPostgres.start()
            simulator = try await TeacherSim.start(options, in: work)
            let shared = [
                "DISTILL_STORE_URL": try postgres!.createDatabase(), "DISTILL_STORE_TLS": "disable",
                "PGPASSWORD": ScratchPostgres.password,
            ]
            for (name, environment) in [("sqlite", [:]), ("a", shared), ("b", shared)] {
                let directory = work.appendingPathComponent(name)
                try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
                daemons.append(
                    try await Daemon(
                        options, in: directory, dataDirectory: directory.appendingPathComponent("data").path, teacherURL: simulator!.url,
                        environment: environment.merging(["DISTILL_DISTILL_ENABLED": "false"]) { $1 }
                    ).start())
            }
            summary = try await measure(sqlite: daemons[0], a: daemons[1], b: daemons[2], http: http)
        } catch {
            summary = ["result": "fail", "failure": .string("\(error)")]
        }
        for daemon in daemons where daemon.isRunning { _ = await daemon.stop() }
        if let simulator { await BenchProcesses.stop(simulator.process) }
        await postgres?.stop()
        try? await http.shutdown()
        if !options.keep { try? FileManager.default.removeItem(at: work) }
        try options.report(summary, verdict: ["cluster: \(summary["result"]?.stringValue ?? "fail")"])
    }

    private func measure(sqlite: Daemon, a: Daemon, b: Daemon, http: HTTPClient) async throws -> JSONValue {
        var queries = try Query.banking77(options)[...]
        func take(_ count: Int) throws -> ArraySlice<Query> {
            guard queries.count >= count else { throw BenchError("not enough distinct Banking77 queries for the options given") }
            defer { queries = queries.dropFirst(count) }
            return queries.prefix(count)
        }
        let refresh = [DistillHeader.cache: "refresh"]

        Reliability.log("propagation: \(propagations) answers cached through A, each timed until B serves it")
        var propagation: [Double] = []
        for query in try take(propagations) {
            let before = try await b.admin.cacheStats().entries
            try Self.expect(await LoadReply.ask(a.client(http), query.text, headers: refresh), .teacher, "A, a refreshed query")
            let answered = ContinuousClock.now
            _ = try await Reliability.await("B to follow A's commit", timeout: .seconds(10), every: .zero) {
                try await b.admin.cacheStats().entries > before ? true : nil
            }
            try Self.expect(await LoadReply.ask(b.client(http), query.text), .cache, "B, the query A just answered")
            propagation.append(Reliability.seconds(.now - answered) * 1000)
        }

        Reliability.log("teacher path: \(teacherRequests) teacher answers per store, one at a time, in \(rounds) rounds")
        var teacherPath: [String: [Double]] = [:]
        let perRound = teacherRequests / rounds
        for _ in 0..<rounds {
            for (name, daemon) in [("sqlite", sqlite), ("postgres", a)] {
                for query in try take(perRound) {
                    let reply = await LoadReply.ask(daemon.client(http), query.text, headers: refresh)
                    try Self.expect(reply, .teacher, "\(name), a refreshed query")
                    teacherPath[name, default: []].append(Reliability.seconds(reply.elapsed) * 1000)
                }
            }
        }

        Reliability.log("exact hits: 200 queries cached on each store, then \(workers) clients for \(hitSeconds) s per node")
        let hot = Array(try take(200))
        for daemon in [sqlite, a] {
            for query in hot { try Self.expect(await LoadReply.ask(daemon.client(http), query.text, headers: refresh), .teacher, "priming") }
        }
        _ = try await Reliability.await("B to follow A's commits", timeout: .seconds(30), every: .zero) {
            try await b.admin.cacheStats().entries >= a.admin.cacheStats().entries ? true : nil
        }
        for query in hot { try Self.expect(await LoadReply.ask(b.client(http), query.text), .cache, "B, a query A cached") }
        var hits: [String: (count: Int, seconds: Double)] = [:]
        for _ in 0..<rounds {
            for (name, daemon) in [("sqlite", sqlite), ("postgres_a", a), ("postgres_b", b)] {
                let (count, seconds) = try await Self.hammer(daemon.client(http), hot, workers: workers, for: .seconds(hitSeconds / Double(rounds)))
                hits[name, default: (0, 0)].count += count
                hits[name, default: (0, 0)].seconds += seconds
            }
        }

        func percentiles(_ values: [Double]) -> JSONValue {
            let sorted = values.sorted()
            func at(_ q: Double) -> Double { sorted[min(sorted.count - 1, max(0, Int((q * Double(sorted.count)).rounded(.up)) - 1))] }
            return [
                "samples": .int(sorted.count), "p50_ms": Reliability.rounded(at(0.5), 2), "p99_ms": Reliability.rounded(at(0.99), 2),
                "max_ms": Reliability.rounded(sorted.last ?? 0, 2),
            ]
        }
        func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
        let rates = hits.mapValues { Double($0.count) / $0.seconds }
        return [
            "result": "pass",
            "build": .string(options.binaries.lastPathComponent),
            "propagation_a_to_b": percentiles(propagation),
            "teacher_path": [
                "sqlite": percentiles(teacherPath["sqlite"] ?? []), "postgres": percentiles(teacherPath["postgres"] ?? []),
                "postgres_over_sqlite_p50": Reliability.rounded(median(teacherPath["postgres"]!) / median(teacherPath["sqlite"]!), 2),
            ],
            "exact_hits_per_second": .object(
                rates.mapValues { Reliability.rounded($0, 0) }.merging(
                    ["postgres_a_over_sqlite": Reliability.rounded(rates["postgres_a"]! / rates["sqlite"]!, 2)]) { $1 }),
            "workers": .int(workers),
        ]
    }

    /// `workers` clients asking `queries` in turn for `duration`: how many answers came, in how long.
    private static func hammer(
        _ client: DistillClient, _ queries: [Query], workers: Int, for duration: Duration
    ) async throws -> (count: Int, seconds: Double) {
        let started = ContinuousClock.now
        let deadline = started + duration
        let counts = try await withThrowingTaskGroup(of: Int.self) { group in
            for worker in 0..<workers {
                group.addTask {
                    var count = 0
                    var next = worker
                    while ContinuousClock.now < deadline {
                        try expect(await LoadReply.ask(client, queries[next % queries.count].text), .cache, "an exact hit")
                        count += 1
                        next += workers
                    }
                    return count
                }
            }
            return try await group.reduce(0, +)
        }
        return (counts, Reliability.seconds(.now - started))
    }

    private static func expect(_ reply: LoadReply, _ source: DistillSource, _ what: String) throws {
        guard reply.status == 200, reply.source == source else {
            throw ReliabilityFailure("\(what): expected \(source.rawValue), got \(reply)")
        }
    }
}
