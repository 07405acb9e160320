import ArgumentParser
import AsyncHTTPClient
import DistillAPI
import DistillClient
import Foundation
import GRDB
import SeededRandom
import Synchronization
import TeacherSimulator

#if canImport(Glibc)
import Glibc
#endif

/// Kills distilld with SIGKILL under load, restarts it on the same data directory and checks that
/// nothing a client was given is lost; then breaks the teacher and fills the disk.
struct ChaosBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chaos",
        abstract: "SIGKILLs under load, teacher faults and a full disk: nothing a client was given may be lost.",
        discussion: """
            distill-bench chaos --kills 50      make chaos (on the release build)
            distill-bench chaos --kills 5       the CI mode (make test, on the debug build)

            1. Kills. The daemon is taught --min-rows + 100 distinct Banking77 queries and trains its \
            first student on its own schedule; then --workers clients keep sending a seeded mix (new \
            queries, cache repeats, refreshes, a quarter as streams), each with its own x-request-id, \
            while the daemon is SIGKILLed --kills times. Each kill is one of, in a seeded order (each \
            kind at least once when --kills >= 3): training (a run is requested, and the daemon is \
            killed at a seeded epoch of its training, or as soon as it leaves training), snapshot (a \
            seeded 0-1.2 s after a new index snapshot is committed; snapshots run every second), \
            random (a seeded 0.3-3 s into the load). After each kill, with the daemon down: PRAGMA \
            integrity_check on a copy of the database and WAL as the kill left them. After each \
            restart, with the load paused: the cache holds exactly the committed entries (the admin \
            API's counts per scope = the rows of cache_entries; for a seeded sample of entries the \
            index finds each at similarity >= 0.999 and a repeat of its prompt is a cache hit with its \
            answer), and each scope has at most one active student version, the one that serves. At \
            the end, every teacher answer a client received (a 200 from the teacher; for a stream, \
            one that reached [DONE]) is in the teacher log with the same request id and answer.

            2. Teacher faults (teacher-sim's PUT /sim/faults; the daemon restarted with distillation \
            off so the student stays put): hangs, 5xx storms, 429 storms, malformed JSON, connections \
            closed mid-answer. New queries get a clear OpenAI-style 502/503/504 (or, for a stream \
            already started, an error event and no [DONE]) within the teacher's request timeout plus \
            3 s, and nothing of theirs reaches the teacher log; cache repeats and the student's \
            answers keep coming; once the faults stop, the teacher answers again.

            3. Disk full: the store copied onto a tmpfs (needs root, else this part is reported as \
            skipped), the rest of it filled with a file: teacher answers fail cleanly with 503 \
            storage_unavailable (never delivered, so never lost), cache hits and student answers go \
            on, and once the file is deleted the teacher's answers are recorded again.

            Audits are off: an audit asks the teacher on purpose, so during a teacher outage it would \
            fail by design and blur what the fault checks measure. Prints a summary table and JSON \
            (also to --json FILE). Exit 0 pass, 1 fail.
            """)

    @OptionGroup var options: ReliabilityOptions
    @Option(help: "SIGKILLs under load.") var kills = 20
    @Option(help: "Clients sending at once.") var workers = 4
    @Option(help: "Cache entries checked after each restart.") var sample = 20

    func run() async throws {
        let interrupt = BenchProcesses.killAllOnInterrupt()
        defer { interrupt.forEach { $0.cancel() } }
        let work = try options.workDirectory("chaos")
        Reliability.log("chaos: \(kills) kills, \(options.binaries.lastPathComponent) build in \(options.binaries.path), work directory \(work.path)")
        let chaos = try Chaos(options: options, kills: kills, workers: workers, sample: sample, work: work)
        do {
            try await chaos.run()
        } catch {
            chaos.checked(["\(error)"])
        }
        await chaos.cleanUp()
        let summary = chaos.summary()
        if summary["result"] != "pass", let daemon = chaos.daemon { print("distilld's last log lines:\n\(daemon.stderrTail())") }
        if !options.keep { try? FileManager.default.removeItem(at: work) }
        try options.report(summary, verdict: chaos.verdict(summary))
    }
}

/// The longest a request may wait on the teacher (DISTILL_TEACHER_REQUEST_TIMEOUT_SECONDS), and
/// what "never hangs past its timeouts" allows a client to wait.
private let teacherTimeout = 4
private let bound = Duration.seconds(teacherTimeout + 3)
private let snapshotInterval = 1.0
/// New queries that must reach the teacher: neither the cache nor the student may answer them.
private let noCache = ["cache-control": "no-cache"]
private let noStore = ["cache-control": "no-store"]

private let daemonEnvironment = [
    "DISTILL_DISTILL_INTERVAL_SECONDS": "1",
    "DISTILL_DISTILL_MIN_NEW_ROWS": "200",
    "DISTILL_DISTILL_MAX_ROWS": "3000",
    "DISTILL_CACHE_SNAPSHOT_INTERVAL_SECONDS": String(snapshotInterval),
    "DISTILL_CACHE_HIT_FLUSH_SECONDS": "1",
    // HNSW from 256 entries, so snapshots are graphs worth restoring.
    "DISTILL_INDEX_FLAT_UNTIL": "256",
    "DISTILL_STUDENT_AUDIT_SHARE": "0",
    "DISTILL_TEACHER_READ_TIMEOUT_SECONDS": "2",
    "DISTILL_TEACHER_REQUEST_TIMEOUT_SECONDS": String(teacherTimeout),
    "DISTILL_TEACHER_MAX_ATTEMPTS": "2",
    "DISTILL_TEACHER_BACKOFF_INITIAL_MS": "50",
    "DISTILL_TEACHER_BACKOFF_MAX_MS": "200",
    "DISTILL_TEACHER_MAX_RETRY_AFTER_SECONDS": "1",
    "DISTILL_TEACHER_BREAKER_FAILURE_THRESHOLD": "5",
    "DISTILL_TEACHER_BREAKER_OPEN_SECONDS": "2",
    "DISTILL_SERVER_SHUTDOWN_GRACE_SECONDS": "5",
]

/// Each teacher fault, and the error codes it may produce (teacher_circuit_open once the breaker opens).
private let teacherFaults: [(name: String, faults: SimulatorFaults, codes: Set<String>)] = {
    func faults(_ set: (inout SimulatorFaults) -> Void) -> SimulatorFaults {
        var faults = SimulatorFaults()
        set(&faults)
        return faults
    }
    return [
        ("hang", faults { $0.hangRate = 1 }, ["teacher_timeout", "teacher_circuit_open"]),
        ("5xx storm", faults { $0.errorRate = 1 }, ["teacher_error", "teacher_circuit_open"]),
        ("429 storm", faults { $0.rateLimitRate = 1 }, ["teacher_rate_limited"]),
        ("malformed JSON", faults { $0.malformedRate = 1 }, ["teacher_bad_response", "teacher_circuit_open"]),
        ("mid-answer close", faults { $0.closeRate = 1 }, ["teacher_stream_interrupted", "teacher_bad_response", "teacher_circuit_open"]),
    ]
}()

/// One chaos run: its processes, its load, and what its checks found.
private final class Chaos: Sendable {
    let options: ReliabilityOptions
    let kills: Int, workers: Int, sample: Int
    let work: URL
    let workload: Workload
    /// The load's clients: one connection each, and the fault checks' beside them.
    let http = DistillClient.makeHTTPClient(connections: 32)

    private struct State {
        var random: SplitMix64
        var simulator: TeacherSim?
        var daemon: Daemon?
        var mount: String?
        var failures: [String] = []
        var checks = (passed: 0, failed: 0)
        /// Request id → answer: the teacher answers clients got.
        var received: [String: String] = [:]
        /// Request ids of teacher answers that failed: they must not be logged.
        var withheld: Set<String> = []
        var studentQueries: [Query] = []
        var teacherLog: JSONValue = .null
        var kills: [JSONValue] = []
        var integrity = (passed: 0, failed: 0)
        var storeChecks = 0
        var load = (requests: 0, cutByKill: 0, errors: 0)
        var loadErrors: [String] = []
        var faults: [String: JSONValue] = [:]
        var diskFull: JSONValue = .null
        /// While the daemon serves and the load may go on; the load tasks wait for it.
        var running = false
        var waiting: [CheckedContinuation<Void, Never>] = []
        var finished = false
        /// Kills so far: a failure of a request sent before the last kill was cut off by it.
        var generation = 0
        var inFlight = 0
        var requestNumber = 0
    }
    private let state: Mutex<State>
    let started = ContinuousClock.now

    init(options: ReliabilityOptions, kills: Int, workers: Int, sample: Int, work: URL) throws {
        (self.options, self.kills, self.workers, self.sample, self.work) = (options, kills, workers, sample, work)
        workload = Workload(try Query.banking77(options), mix: [(.repeat, 0.5), (.new, 0.35), (.refresh, 0.15)], streamShare: 0.25)
        state = Mutex(State(random: SplitMix64(seed: options.seed)))
    }

    var daemon: Daemon? { state.withLock { $0.daemon } }
    private var simulator: TeacherSim { state.withLock { $0.simulator! } }

    /// Counts one check, failed if it found problems.
    func checked(_ problems: [String]) {
        state.withLock { state in
            if problems.isEmpty { state.checks.passed += 1 } else { state.checks.failed += 1 }
            state.failures += problems
        }
    }

    private func random<T>(_ draw: (inout SplitMix64) -> T) -> T { state.withLock { draw(&$0.random) } }

    private func startDaemon(dataDirectory: String? = nil, distilling: Bool = true) async throws -> Daemon {
        var environment = daemonEnvironment
        environment["DISTILL_DISTILL_MIN_ROWS"] = String(options.minRows)
        if !distilling { environment["DISTILL_DISTILL_ENABLED"] = "false" }
        let daemon = try await Daemon(
            options, in: work, dataDirectory: dataDirectory ?? work.appendingPathComponent("data").path, teacherURL: simulator.url,
            environment: environment
        ).start()
        state.withLock { $0.daemon = daemon }
        return daemon
    }

    // MARK: - Phases

    func run() async throws {
        let simulator = try await TeacherSim.start(options, in: work, flags: ["--hang-seconds", "20", "--seed", String(options.seed)])
        state.withLock { $0.simulator = simulator }
        let daemon = try await startDaemon()
        Reliability.log("teaching until the teacher has answered \(options.minRows + 100) queries")
        let tally = Tally()
        await teach(daemon, workload, count: options.minRows + 100, workers: workers, seed: options.seed, tally: tally, http: http)
        guard tally.counts.errorCount == 0 else {
            throw ReliabilityFailure("\(tally.counts.errorCount) errors while teaching, e.g. \(tally.counts.errors.prefix(3))")
        }
        // A student first, so that each training kill interrupts a re-distillation with a version
        // serving, and the checks after it see whether that version survived whole.
        let promoted = try await Reliability.awaitPromotion(daemon, timeout: .seconds(180))
        Reliability.log("student version \(promoted.version.map(String.init) ?? "?") serving; killing under load")
        try await killUnderLoad()
        try await checkTeacherLog("after the kills")
        try await teacherFaultChecks()
        try await fillTheDisk()
        try await checkTeacherLog("at the end")
    }

    private func killUnderLoad() async throws {
        let kinds = random { Array((0..<kills).map { ["training", "snapshot", "random"][$0 % 3] }).shuffled(using: &$0) }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<workers { group.addTask { await self.loadWorker(index) } }
            setRunning(true)
            for (offset, kind) in kinds.enumerated() {
                let number = offset + 1
                var kill: [String: JSONValue] = ["number": .int(number), "kind": .string(kind)]
                switch kind {
                case "training": try await awaitTraining(&kill)
                case "snapshot": try await awaitSnapshot(&kill)
                default: try await awaitRandom(&kill)
                }
                try await killDaemon(&kill)
                let integrity = try StoreCheck.integrity(of: daemon!.database)
                state.withLock { if integrity == ["ok"] { $0.integrity.passed += 1 } else { $0.integrity.failed += 1 } }
                checked(integrity == ["ok"] ? [] : ["kill \(number) (\(kind)): integrity_check: \(integrity.prefix(5))"])
                let restarting = ContinuousClock.now
                try await daemon!.start()
                kill["restart_seconds"] = Reliability.rounded(Reliability.seconds(.now - restarting), 2)
                kill["active_students"] = .array(try await checkStore("after kill \(number) (\(kind))").map { .integer($0) })
                state.withLock { $0.kills.append(.object(kill)) }
                checked([])  // it restarted on the data the kill left
                Reliability.log("kill \(number)/\(kinds.count) (\(kind)) survived: \(JSONValue.object(kill).encodedText)")
                setRunning(true)
            }
            state.withLock { $0.finished = true }
            setRunning(true)
            try await group.waitForAll()
        }
        try await pause()
    }

    private func awaitTraining(_ kill: inout [String: JSONValue]) async throws {
        let admin = daemon!.admin
        _ = try await admin.requestDistillRuns(scope: nil)
        // Kill at a seeded epoch, or as soon as the run leaves training (it stops early): then it
        // is evaluating or storing its version, still in the middle of the re-distillation.
        let target = random { Int.random(in: 0...3, using: &$0) }
        let watched = Mutex<Int?>(nil)
        let run = try await Reliability.await("a distillation run in its training phase", timeout: .seconds(180), every: .milliseconds(10)) {
            () async throws -> DistillRunInfo? in
            let runs = try await admin.distillStatus().runs
            if watched.withLock({ $0 }) == nil {
                guard let training = runs.first(where: { $0.phase == .training }) else { return nil }
                watched.withLock { $0 = training.id }
            }
            let id = watched.withLock { $0 }
            guard let run = runs.first(where: { $0.id == id }), run.phase != .training || run.epoch >= target else { return nil }
            return run
        }
        kill["run"] = [
            "id": .int(run.id), "phase": .string(run.phase.rawValue), "epoch": .int(run.epoch), "target_epoch": .int(target),
            "rows": run.rows.map { .int($0) } ?? .null,
        ]
    }

    private func awaitSnapshot(_ kill: inout [String: JSONValue]) async throws {
        let database = daemon!.database
        func newest() throws -> DatabaseValue? {
            try StoreCheck.read(database) { try DatabaseValue.fetchOne($0, sql: "SELECT max(created_at) FROM index_snapshots") }
        }
        let before = try newest()
        _ = try await Reliability.await("a new index snapshot", timeout: .seconds(30), every: .milliseconds(10)) {
            try newest() != before ? true : nil
        }
        let offset = random { Double.random(in: 0...(1.2 * snapshotInterval), using: &$0) }
        kill["after_snapshot_seconds"] = Reliability.rounded(offset, 3)
        try await Task.sleep(for: .seconds(offset))  // the fault schedule: where in the snapshot cycle the kill lands
    }

    private func awaitRandom(_ kill: inout [String: JSONValue]) async throws {
        let delay = random { Double.random(in: 0.3...3, using: &$0) }
        kill["after_seconds"] = Reliability.rounded(delay, 3)
        try await Task.sleep(for: .seconds(delay))  // the fault schedule
    }

    private func killDaemon(_ kill: inout [String: JSONValue]) async throws {
        let inFlight = state.withLock { state in
            state.generation += 1
            state.running = false
            return state.inFlight
        }
        kill["in_flight"] = .int(inFlight)
        let status = await daemon!.kill()
        guard status == SIGKILL else {
            throw ReliabilityFailure("kill \(kill["number"]?.intValue ?? 0): distilld exited \(status) before the SIGKILL landed:\n\(daemon!.stderrTail())")
        }
    }

    /// Stops the load and waits until no request is in flight.
    private func pause() async throws {
        setRunning(false)
        _ = try await Reliability.await("the load's requests in flight to finish", timeout: .seconds(120), every: .milliseconds(50)) {
            state.withLock { $0.inFlight == 0 } ? true : nil
        }
    }

    // MARK: - The load

    private func setRunning(_ running: Bool) {
        let waiting = state.withLock { state in
            state.running = running
            defer { if running { state.waiting = [] } }
            return running ? state.waiting : []
        }
        waiting.forEach { $0.resume() }
    }

    private func waitUntilRunning() async {
        await withCheckedContinuation { continuation in
            let now = state.withLock { state in
                if !state.running { state.waiting.append(continuation) }
                return state.running
            }
            if now { continuation.resume() }
        }
    }

    private enum Turn {
        case send(generation: Int, requestID: String)
        /// The daemon is down (a kill): wait until it serves again.
        case wait
        case stop
    }

    private func loadWorker(_ index: Int) async {
        var random = SplitMix64(seed: options.seed &* 104_729 &+ UInt64(index))
        while true {
            await waitUntilRunning()
            let turn = state.withLock { state -> Turn in
                guard !state.finished else { return .stop }
                guard state.running else { return .wait }
                state.inFlight += 1
                state.requestNumber += 1
                return .send(generation: state.generation, requestID: "chaos-\(options.seed)-\(state.requestNumber)")
            }
            switch turn {
            case .stop: return
            case .wait: continue
            case .send(let generation, let requestID):
                if let request = workload.pick(&random) { await send(request, requestID: requestID, generation: generation) }
                state.withLock { $0.inFlight -= 1 }
            }
        }
    }

    private func send(_ request: Workload.Request, requestID: String, generation: Int) async {
        let reply = await LoadReply.ask(
            daemon!.client(http), request.query.text, stream: request.stream, headers: request.headers, requestID: requestID)
        state.withLock { state in
            state.load.requests += 1
            if reply.ok {
                if reply.requestID != requestID {
                    state.loadErrors.append("\(requestID): the reply's x-request-id is \(reply.requestID ?? "missing")")
                } else if reply.source == .teacher {
                    state.received[requestID] = reply.answer
                } else if reply.source == .student {
                    state.studentQueries.append(request.query)
                }
            } else if generation != state.generation, reply.cut {
                // Cut off by a kill (a dead daemon sends no error): not an answer, so nothing to find.
                state.load.cutByKill += 1
            } else {
                state.load.errors += 1
                state.loadErrors.append("\(request.kind) \(requestID) \(request.query.text.debugDescription) stream=\(request.stream): \(reply)")
            }
        }
        if reply.ok, reply.source == .teacher, request.kind == .new { workload.learned(request.query) }
    }

    // MARK: - Checks

    /// The cache and the student after a restart, with no request in flight; the active versions.
    private func checkStore(_ when: String) async throws -> [Int64] {
        let daemon = daemon!
        var problems: [String] = []
        let stats = try await daemon.admin.cacheStats()
        let rows = try StoreCheck.read(daemon.database) { db in
            try Row.fetchAll(db, sql: "SELECT scope, count(*) AS n FROM cache_entries GROUP BY scope")
                .reduce(into: [String: Int]()) { counts, row in counts[row["scope"] as String] = row["n"] as Int }
        }
        let stored = rows.values.reduce(0, +)
        let served = Dictionary(stats.scopes.map { ($0.scope, $0.entries) }) { a, _ in a }
        if stats.entries != stored || served != rows {
            problems.append("\(when): the cache serves \(stats.entries) entries \(served), the store has \(stored) \(rows)")
        }
        if stats.indexed != stored {
            problems.append("\(when): the indexes hold \(stats.indexed) vectors, the store \(stored) entries")
        }
        let entries = try StoreCheck.read(daemon.database) { db in
            try Row.fetchAll(db, sql: "SELECT id, scope, prompt, answer FROM cache_entries ORDER BY id").map {
                (id: $0["id"] as Int64, scope: $0["scope"] as String, prompt: $0["prompt"] as String, answer: $0["answer"] as String)
            }
        }
        let client = daemon.client(http)
        for entry in random({ entries.shuffled(using: &$0) }).prefix(sample) {
            let found = try await daemon.admin.searchCache(CacheSearchRequest(text: entry.prompt, scope: entry.scope, limit: 1)).first
            if found == nil || found!.similarity < 0.999 || normalized(found!.entry.prompt) != normalized(entry.prompt) {
                problems.append("\(when): entry \(entry.id) (\(entry.prompt.debugDescription)) is not in its scope's index: \(String(describing: found))")
            }
            let reply = await LoadReply.ask(client, entry.prompt)
            if !reply.ok || reply.source != .cache || reply.answer != entry.answer {
                problems.append(
                    "\(when): a repeat of entry \(entry.id) (\(entry.prompt.debugDescription)) was \(reply), answer \(String(describing: reply.answer)) (stored \(entry.answer.debugDescription))")
            }
        }

        // The distiller may promote a version between two reads: read the store between two equal
        // answers of the daemon.
        let (active, serving) = try await Reliability.await("the student status to hold still", timeout: .seconds(60), every: .milliseconds(50)) {
            () async throws -> ([(scope: String, version: Int64)], [StudentStatus.Scope])? in
            let before = try await daemon.admin.studentStatus().scopes
            let active = try StoreCheck.read(daemon.database) { db in
                try Row.fetchAll(db, sql: "SELECT scope, id FROM student_versions WHERE status = 'active'").map {
                    (scope: $0["scope"] as String, version: $0["id"] as Int64)
                }
            }
            let after = try await daemon.admin.studentStatus().scopes
            return before == after ? (active, after) : nil
        }
        let scopes = Dictionary(grouping: active, by: \.scope).mapValues { $0.map(\.version) }
        let servingByScope = Dictionary(serving.map { ($0.scope, $0) }) { a, _ in a }
        for (scope, versions) in scopes {
            if versions.count != 1 {
                problems.append("\(when): scope \(scope.prefix(12)) has \(versions.count) active versions: \(versions)")
            } else if let info = servingByScope[scope], info.version == versions[0], info.serving {
                continue
            } else {
                problems.append("\(when): scope \(scope.prefix(12))'s active version \(versions[0]) is not serving: \(String(describing: servingByScope[scope]))")
            }
        }
        for (scope, info) in servingByScope where scopes[scope] == nil {
            problems.append("\(when): scope \(scope.prefix(12)) serves version \(info.version), which is not active in the store")
        }
        if problems.isEmpty { state.withLock { $0.storeChecks += 1 } }
        checked(problems)
        return scopes.values.flatMap { $0 }.sorted()
    }

    /// Every teacher answer a client received is in the log (same request id, same answer); no
    /// answer that was withheld is.
    private func checkTeacherLog(_ when: String) async throws {
        var logged: [String: String] = [:]
        var after: Int64? = 0
        while let next = after {
            let page = try await daemon!.admin.teacherLog(after: next, limit: 1000)
            for entry in page.entries { logged[entry.requestID] = entry.answer }
            after = page.nextAfter
        }
        let (received, withheld) = state.withLock { ($0.received, $0.withheld) }
        let lost = received.keys.filter { logged[$0] == nil }.sorted()
        let wrong = received.compactMap { id, answer in logged[id].flatMap { $0 == answer ? nil : id } }.sorted()
        let leaked = withheld.filter { logged[$0] != nil }.sorted()
        let summary: JSONValue = [
            "checked": .int(received.count), "lost": .int(lost.count), "wrong_answer": .int(wrong.count), "withheld": .int(withheld.count),
            "withheld_but_logged": .int(leaked.count), "log_rows": .int(logged.count),
        ]
        state.withLock { $0.teacherLog = summary }
        var problems: [String] = []
        if !lost.isEmpty { problems.append("\(when): \(lost.count) teacher answers clients received are not in the teacher log: \(lost.prefix(10))") }
        if !wrong.isEmpty { problems.append("\(when): \(wrong.count) logged answers differ from what the client got: \(wrong.prefix(10))") }
        if !leaked.isEmpty { problems.append("\(when): \(leaked.count) failed teacher calls were logged anyway: \(leaked.prefix(10))") }
        checked(problems)
        Reliability.log("teacher log \(when): \(summary.encodedText)")
    }

    // MARK: - Teacher faults

    /// A graceful restart with the student fixed: no run may swap it during the checks.
    private func restartWithoutDistillation(on dataDirectory: String? = nil) async throws -> Daemon {
        setRunning(false)
        let status = await daemon!.stop()
        checked(status == 0 ? [] : ["distilld exited \(status) on SIGTERM, not 0:\n\(daemon!.stderrTail())"])
        return try await startDaemon(dataDirectory: dataDirectory ?? daemon!.dataDirectory, distilling: false)
    }

    /// Queries answered without the teacher right now: cache repeats, and queries the student answers.
    private func probes(_ client: DistillClient, count: Int) async throws -> (cached: [Query], taught: [Query]) {
        let repeats = random { workload.answered.suffix(500).shuffled(using: &$0) }
        var cached: [Query] = []
        for query in repeats where cached.count < count {
            let reply = await LoadReply.ask(client, query.text)
            if reply.ok, reply.source == .cache { cached.append(query) }
        }
        // Unseen queries too (with no-store, so they stay unseen): the student is sure of many.
        let studentQueries = state.withLock { Array(Set($0.studentQueries)) }.sorted { $0.text < $1.text }
        let candidates = random { studentQueries.shuffled(using: &$0) } + workload.unseen.prefix(500)
        var taught: [Query] = []
        for query in candidates where taught.count < count {
            let reply = await LoadReply.ask(client, query.text, headers: noStore)
            if reply.ok, reply.source == .student { taught.append(query) }
        }
        guard cached.count == count, taught.count == count else {
            throw ReliabilityFailure("found \(cached.count) cache and \(taught.count) student probes, wanted \(count) of each")
        }
        return (cached, taught)
    }

    private func teacherFaultChecks() async throws {
        for (name, faults, codes) in teacherFaults {
            // Restarted before each fault, so that the student's tests start afresh: its first confident requests
            // are on probation, so the probes it answers are not borderline ones, which a shift suspected during the
            // fault would turn away; and the probes of all the faults cannot add up to an evident shift.
            let client = try await restartWithoutDistillation().client(http)
            // Probed afresh before each fault: between faults the teacher answers again, and what the student
            // answers changes with what it hears (a new class it lacks turns its nearest requests away).
            let (cached, taught) = try await probes(client, count: 8)
            try await simulator.setFaults(faults)
            var result = try await duringFault(name, codes: codes, cached: cached, taught: taught)
            try await simulator.setFaults()
            result["recovery_seconds"] = Reliability.rounded(try await awaitTeacher(client), 2)
            state.withLock { $0.faults[name] = .object(result) }
            Reliability.log("teacher fault '\(name)': \(JSONValue.object(result).encodedText)")
        }
    }

    /// New queries (plain and streamed) at once against the fault, cache and student probes beside them.
    private func duringFault(_ name: String, codes: Set<String>, cached: [Query], taught: [Query]) async throws -> [String: JSONValue] {
        let daemon = daemon!
        let outcome = Locked((errors: [String: Int](), slowest: 0.0, problems: [String]()))
        var answers = (cache: 0, student: 0)
        var problems: [String] = []
        await withTaskGroup(of: Void.self) { group in
            for index in 0..<8 {
                let query = workload.takeNew()!
                let requestID = "chaos-fault-\(name.replacingOccurrences(of: " ", with: "-"))-\(index)"
                state.withLock { _ = $0.withheld.insert(requestID) }
                group.addTask {
                    let reply = await LoadReply.ask(
                        daemon.client(self.http), query.text, stream: index % 2 == 1, headers: noCache, requestID: requestID)
                    outcome.withLock { outcome in
                        outcome.errors["\(reply.status.map(String.init) ?? "none") \(reply.errorCode ?? "none")", default: 0] += 1
                        outcome.slowest = max(outcome.slowest, Reliability.seconds(reply.elapsed))
                        if reply.ok || !codes.contains(reply.errorCode ?? "") {
                            outcome.problems.append("\(name): \(requestID): expected one of \(codes.sorted()) and no answer, got \(reply)")
                        } else if reply.elapsed > bound {
                            outcome.problems.append("\(name): \(requestID) took \(reply.elapsed) (bound \(bound))")
                        } else if let status = reply.status, status != 200, ![502, 503, 504].contains(status) {
                            outcome.problems.append("\(name): \(requestID): status \(status)")
                        }
                    }
                }
            }
            let client = daemon.client(http)
            for query in cached {
                let reply = await LoadReply.ask(client, query.text, stream: random { $0.nextUnit() < 0.5 })
                if reply.ok, reply.source == .cache { answers.cache += 1 } else { problems.append("\(name): a cached query was \(reply)") }
            }
            for query in taught {
                let reply = await LoadReply.ask(client, query.text, stream: random { $0.nextUnit() < 0.5 }, headers: noStore)
                // What the cache learned since the probe may answer it first (a paraphrase it now trusts, or its
                // audit the failing teacher turned into a hit): either way, without the teacher.
                switch (reply.ok, reply.source) {
                case (true, .student?): answers.student += 1
                case (true, .cache?): answers.cache += 1
                default: problems.append("\(name): a query the student answers was \(reply)")
                }
            }
        }
        let result = outcome.withLock { $0 }
        checked(problems + result.problems)
        return [
            "errors": .counts(result.errors), "slowest_error_seconds": Reliability.rounded(result.slowest, 2),
            "cache_answers": .int(answers.cache), "student_answers": .int(answers.student),
        ]
    }

    /// Seconds until a new query is answered by the teacher again (the breaker closes).
    private func awaitTeacher(_ client: DistillClient) async throws -> Double {
        let started = ContinuousClock.now
        _ = try await Reliability.await("the teacher to answer again after its faults", timeout: .seconds(30), every: .milliseconds(200)) {
            try await self.askTeacher(client, prefix: "chaos-recover", withholdFailure: false).ok ? true : nil
        }
        return Reliability.seconds(.now - started)
    }

    /// A new query that must reach the teacher; a teacher answer is recorded as received, and a
    /// failure, if `withholdFailure`, as an answer that must not be in the log.
    private func askTeacher(
        _ client: DistillClient, prefix: String, stream: Bool = false, withholdFailure: Bool = true
    ) async throws -> LoadReply {
        guard let query = workload.takeNew() else { throw ReliabilityFailure("the workload ran out of new queries") }
        let requestID = state.withLock { state in
            state.requestNumber += 1
            return "\(prefix)-\(state.requestNumber)"
        }
        let reply = await LoadReply.ask(client, query.text, stream: stream, headers: noCache, requestID: requestID)
        state.withLock { state in
            if reply.ok, reply.source == .teacher {
                state.received[requestID] = reply.answer
            } else if withholdFailure {
                state.withheld.insert(requestID)
            }
        }
        return reply
    }

    // MARK: - Disk full

    private func fillTheDisk() async throws {
        guard geteuid() == 0 else {
            state.withLock { $0.diskFull = ["skipped": "mounting a tmpfs needs root; run as root (CI does) to simulate a full disk"] }
            return
        }
        setRunning(false)
        let status = await daemon!.stop()
        checked(status == 0 ? [] : ["distilld exited \(status) on SIGTERM, not 0"])
        let dataDirectory = daemon!.dataDirectory
        let used = try FileManager.default.contentsOfDirectory(atPath: dataDirectory).compactMap {
            try FileManager.default.attributesOfItem(atPath: (dataDirectory as NSString).appendingPathComponent($0))[.size] as? Int
        }.reduce(0, +)
        let mount = work.appendingPathComponent("tmpfs").path
        try FileManager.default.createDirectory(atPath: mount, withIntermediateDirectories: true)
        let size = used + (16 << 20)
        let mounted = try Self.command("/bin/mount", ["-t", "tmpfs", "-o", "size=\(size)", "tmpfs", mount])
        guard mounted.status == 0 else {
            state.withLock { $0.diskFull = ["skipped": .string("mount -t tmpfs failed: \(mounted.output)")] }
            try await daemon!.start()
            return
        }
        state.withLock { $0.mount = mount }
        let data = (mount as NSString).appendingPathComponent("data")
        try FileManager.default.copyItem(atPath: dataDirectory, toPath: data)
        let daemon = try await startDaemon(dataDirectory: data, distilling: false)
        let client = daemon.client(http)
        let (cached, taught) = try await probes(client, count: 8)
        var outcome: [String: JSONValue] = ["tmpfs_bytes": .int(size)]
        let filler = (mount as NSString).appendingPathComponent("filler")
        outcome["filler_bytes"] = .int(try Self.fill(filler))

        // Teacher answers go on while SQLite still has room in pages it holds; then 503s.
        var answersBeforeFull = 0, unavailable = 0
        _ = try await Reliability.await("a 503 storage_unavailable on the full disk", timeout: .seconds(60), every: .zero) {
            () async throws -> Bool? in
            let reply = try await self.askTeacher(client, prefix: "chaos-full")
            if reply.ok, reply.source == .teacher {
                answersBeforeFull += 1
                return nil
            }
            guard reply.status == 503, reply.errorCode == "storage_unavailable" else {
                throw ReliabilityFailure("disk full: a new query got \(reply), expected 200 or 503 storage_unavailable")
            }
            unavailable += 1
            return true
        }
        var problems: [String] = []
        for index in 0..<6 {
            let reply = try await askTeacher(client, prefix: "chaos-full", stream: index % 2 == 1)
            if reply.ok || reply.errorCode != "storage_unavailable" || reply.elapsed > bound {
                problems.append("disk full: a new query got \(reply) in \(reply.elapsed), expected storage_unavailable")
            } else {
                unavailable += 1
            }
        }
        var answers = (cache: 0, student: 0)
        for query in cached {
            let reply = await LoadReply.ask(client, query.text)
            if reply.ok, reply.source == .cache { answers.cache += 1 }
        }
        for query in taught {
            let reply = await LoadReply.ask(client, query.text, headers: noStore)
            if reply.ok, reply.source == .student { answers.student += 1 }
        }
        if answers.cache != cached.count || answers.student != taught.count {
            problems.append("disk full: \(answers.cache)/\(cached.count) cache and \(answers.student)/\(taught.count) student answers")
        }
        if !daemon.isRunning { problems.append("disk full: distilld died:\n\(daemon.stderrTail())") }
        try FileManager.default.removeItem(atPath: filler)
        outcome["recovery_seconds"] = Reliability.rounded(try await awaitTeacher(client), 2)
        (outcome["answers_before_full"], outcome["storage_unavailable"]) = (.int(answersBeforeFull), .int(unavailable))
        (outcome["cache_answers"], outcome["student_answers"]) = (.int(answers.cache), .int(answers.student))
        checked(problems)
        state.withLock { $0.diskFull = .object(outcome) }
        Reliability.log("disk full: \(JSONValue.object(outcome).encodedText)")
    }

    /// Writes `path` until the file system is full; its size.
    private static func fill(_ path: String) throws -> Int {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw ReliabilityFailure("cannot create \(path): \(String(cString: strerror(errno)))") }
        defer { close(descriptor) }
        var written = 0
        for chunk in [1 << 20, 64 << 10, 4 << 10, 512] {
            let block = [UInt8](repeating: 0, count: chunk)
            while true {
                let count = block.withUnsafeBytes { write(descriptor, $0.baseAddress, chunk) }
                if count > 0 {
                    written += count
                } else if errno == ENOSPC {
                    break
                } else {
                    throw ReliabilityFailure("cannot write \(path): \(String(cString: strerror(errno)))")
                }
            }
        }
        return written
    }

    private static func command(_ executable: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let output = Pipe()
        (process.standardOutput, process.standardError) = (output, output)
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, text.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    // MARK: - End

    /// Stops what runs (a check of its own: a clean exit and an intact store) and unmounts.
    func cleanUp() async {
        state.withLock { $0.finished = true }
        setRunning(true)
        if let daemon, daemon.isRunning {
            let status = await daemon.stop()
            checked(status == 0 ? [] : ["distilld exited \(status) on SIGTERM at the end, not 0"])
            do {
                let integrity = try StoreCheck.integrity(of: daemon.database)
                state.withLock { if integrity == ["ok"] { $0.integrity.passed += 1 } else { $0.integrity.failed += 1 } }
                checked(integrity == ["ok"] ? [] : ["integrity_check at the end: \(integrity.prefix(5))"])
            } catch {
                checked(["integrity_check at the end: \(error)"])
            }
        }
        if let simulator = state.withLock({ $0.simulator }) { await BenchProcesses.stop(simulator.process) }
        if let mount = state.withLock({ $0.mount }) { _ = try? Self.command("/bin/umount", [mount]) }
        try? await http.shutdown()
    }

    func summary() -> JSONValue {
        checked(state.withLock { $0.loadErrors.prefix(20).map { "load: \($0)" } })
        return state.withLock { state in
            let kinds = ["training", "snapshot", "random"]
            return [
                "result": state.failures.isEmpty ? "pass" : "fail",
                "failures": .array(state.failures.map { .string($0) }),
                "checks": ["passed": .int(state.checks.passed), "failed": .int(state.checks.failed)],
                "date": .string(Date().formatted(.iso8601.year().month().day())),
                "machine": .string(ReplayBenchmark.machine()),
                "command": .string((["distill-bench"] + CommandLine.arguments.dropFirst()).joined(separator: " ")),
                "build": .string(options.binaries.lastPathComponent),
                "seed": .integer(Int64(bitPattern: options.seed)),
                "seconds": Reliability.rounded(Reliability.seconds(.now - started)),
                "kills_survived": .int(state.kills.count),
                "kills_by_kind": .counts(Dictionary(uniqueKeysWithValues: kinds.map { kind in (kind, state.kills.count { $0["kind"]?.stringValue == kind }) })),
                "kills": .array(state.kills),
                "load": ["requests": .int(state.load.requests), "cut_by_kill": .int(state.load.cutByKill), "errors": .int(state.load.errors)],
                "teacher_answers": state.teacherLog,
                "integrity_checks": ["passed": .int(state.integrity.passed), "failed": .int(state.integrity.failed)],
                "store_checks_passed": .int(state.storeChecks),
                "teacher_faults": .object(state.faults),
                "disk_full": state.diskFull,
            ]
        }
    }

    func verdict(_ summary: JSONValue) -> [String] {
        let answers = summary["teacher_answers"]
        let integrity = summary["integrity_checks"], load = summary["load"]
        var rows: [(String, String)] = [
            ("kills survived", "\(summary["kills_survived"]?.intValue ?? 0) \(summary["kills_by_kind"]?.encodedText ?? "")"),
            ("teacher answers checked", "\(answers?["checked"]?.intValue.map(String.init) ?? "none")"),
            ("answers lost", "\(answers?["lost"]?.intValue.map(String.init) ?? "none")"),
            ("integrity checks passed", "\(integrity?["passed"]?.intValue ?? 0) (failed \(integrity?["failed"]?.intValue ?? 0))"),
            ("store checks passed", "\(summary["store_checks_passed"]?.intValue ?? 0)"),
            ("requests under load", "\(load?["requests"]?.intValue ?? 0) (\(load?["cut_by_kill"]?.intValue ?? 0) cut by kills, \(load?["errors"]?.intValue ?? 0) errors)"),
        ]
        for (name, _, _) in teacherFaults {
            guard let fault = summary["teacher_faults"]?[name] else { continue }
            rows.append((
                "teacher fault: \(name)",
                "\(fault["errors"]?.objectValue?.keys.sorted() ?? []), slowest \(fault["slowest_error_seconds"]?.doubleValue ?? 0) s, "
                    + "cache \(fault["cache_answers"]?.intValue ?? 0), student \(fault["student_answers"]?.intValue ?? 0)"))
        }
        rows.append(("disk full", summary["disk_full"]?.encodedText ?? "null"))
        let checks = summary["checks"]
        let failures: [String] = summary["failures"]?.arrayValue?.compactMap(\.stringValue) ?? []
        var lines: [String] = rows.map { name, value in name + String(repeating: " ", count: max(1, 29 - name.count)) + value }
        lines.append(summary["result"] == "pass" ? "chaos: PASS" : "chaos: FAIL:\n" + failures.joined(separator: "\n"))
        lines.append("chaos: \(checks?["passed"]?.intValue ?? 0) passed, \(checks?["failed"]?.intValue ?? 0) failed")
        return lines
    }
}

private func normalized(_ text: String) -> String {
    text.lowercased().split(whereSeparator: \.isWhitespace).joined(separator: " ")
}

extension JSONValue {
    /// Compact JSON, for log lines.
    var encodedText: String { String(decoding: encoded(), as: UTF8.self) }
}
