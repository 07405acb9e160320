import DistillAPI
import Embedding
import Foundation
import Logging
import ServiceLifecycle
import Storage
import Student
import Synchronization

/// Re-distillation, unattended: a service of the daemon's group that, as soon as a scope's teacher log
/// has `distill.min_rows` answers (then `min_new_rows` new ones, or a tenth of those it last trained on
/// if more; half as many while no student serves it, or while its traffic has shifted away from what
/// the student learned: `ShiftRule.dueSooner`), trains a candidate student on them, weighted
/// back to the traffic (`HoldoutWeights`), evaluates it against the active version on a holdout
/// neither trained on (`HoldoutFold`), and promotes it only if the gate says it is better.
///
/// Commits to the teacher log wake it, not a timer, so a training sees the answers that made it due
/// and not however many more a timer let in: the same traffic gives the same versions.
///
/// Training runs on a thread of its own at low priority, so it uses at most one core and serving
/// never waits on it. Nothing is written until a run has finished: a version is stored, and made
/// active, in one transaction, so a crash mid-training leaves the active version serving.
public final class Distiller: Service, Sendable {
    /// Trains a candidate on `training`, calibrated and evaluated on `holdout`; `shouldStop` is asked after
    /// every epoch. `StudentTrainer.train` in the daemon; tests give one of their own.
    public typealias Trainer = @Sendable (
        _ training: [TeacherExchange], _ holdout: [TeacherExchange], _ configuration: TrainingConfiguration,
        _ shouldStop: () -> Bool
    ) throws(StudentTrainingError) -> TrainingResult

    let store: any DistillStore
    let leadership: Leadership
    let embedder: any Embedder
    let students: Students
    let configuration: DistillSettings
    let training: TrainingConfiguration
    let trainer: Trainer
    let fold: HoldoutFold
    let gate: PromotionGate
    let clock: any WallClock
    let metrics: any DomainMetrics
    /// Called after every run, to hand the memory it freed back to the system.
    let releaseMemory: @Sendable () -> Void
    let logger: Logger
    private let state = Mutex(State())
    private let wakeUps: AsyncStream<Void>
    private let wakeUp: AsyncStream<Void>.Continuation

    struct State {
        /// Queued, running and recently finished runs, oldest first.
        var runs: [DistillRunInfo] = []
        var nextID = 1
        /// Per scope, the untrained count at which its last scheduled run failed: it is retried only
        /// once `min_new_rows` more answers have come.
        var failedAt: [String: Int] = [:]
        /// Per queued scheduled run, the untrained count that made it due.
        var pendingUntrained: [Int: Int] = [:]
        /// Per scope, how many answers its last stored run trained on (since the daemon started).
        var trainedOn: [String: Int] = [:]
    }

    /// Finished runs kept for `cachectl distill status`.
    static let finishedRunsKept = 50

    public init(
        store: any DistillStore, embedder: any Embedder, students: Students, settings: DistillSettings,
        clock: any WallClock, metrics: any DomainMetrics, releaseMemory: @escaping @Sendable () -> Void = {},
        trainer: @escaping Trainer = { training, holdout, configuration, shouldStop throws(StudentTrainingError) in
            try StudentTrainer.train(training: training, holdout: holdout, configuration: configuration, shouldStop: shouldStop)
        },
        leadership: Leadership = Leadership(), logger: Logger
    ) {
        self.leadership = leadership
        self.trainer = trainer
        self.store = store
        self.embedder = embedder
        self.students = students
        self.configuration = settings
        var training = TrainingConfiguration()
        training.minSupport = students.configuration.minSupport
        training.targetAgreement = students.configuration.targetAgreement
        self.training = training
        fold = HoldoutFold(share: settings.holdoutShare)
        var gate = PromotionGate()
        gate.targetAgreement = students.configuration.targetAgreement
        self.gate = gate
        self.clock = clock
        self.metrics = metrics
        self.releaseMemory = releaseMemory
        self.logger = logger
        (wakeUps, wakeUp) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    public func run() async {
        let interval = Duration.seconds(configuration.intervalSeconds)
        await cancelWhenGracefulShutdown { [self] in
            await withDiscardingTaskGroup { group in
                if configuration.enabled {
                    // Answers logged before the daemon started.
                    wakeUp.yield()
                    group.addTask { [wakeUp, store] in
                        for await _ in store.teacherLogCommits() { wakeUp.yield() }
                    }
                    // A backstop should the observation of commits fail.
                    group.addTask { [wakeUp] in
                        while !Task.isCancelled {
                            try? await Task.sleep(for: interval)
                            wakeUp.yield()
                        }
                    }
                }
                for await _ in wakeUps {
                    // Of the nodes sharing a store, the leader alone starts runs by itself.
                    if configuration.enabled, leadership.isLeader { await enqueueDueScopes() }
                    while !Task.isCancelled, let run = nextQueuedRun() {
                        await execute(run)
                    }
                }
                group.cancelAll()
            }
        }
    }

    // MARK: - Runs

    /// Queues a run for `scope`, or for every scope with `distill.min_rows` teacher answers, to start
    /// as soon as the current one (if any) has finished. Scopes already queued are not queued twice.
    public func requestRuns(scope: String?) async throws(DistillError) -> [DistillRunInfo] {
        let untrained: [String: (count: Int, newest: Int64)]
        do {
            untrained = try await store.teacherLogActivity()
        } catch {
            throw .storageUnavailable("the teacher log cannot be read: \(error)")
        }
        let scopes: [String]
        if let scope {
            guard untrained[scope] != nil else { throw .noTeacherAnswers }
            scopes = [scope]
        } else {
            scopes = untrained.filter { $0.value.count >= configuration.minRows }.keys.sorted()
        }
        guard !scopes.isEmpty else { throw .notEnoughAnswers(minRows: configuration.minRows) }
        let runs = scopes.map { enqueue(scope: $0, trigger: .manual) }
        wakeUp.yield()
        return runs
    }

    public func status() -> DistillStatus {
        DistillStatus(
            enabled: configuration.enabled, intervalSeconds: configuration.intervalSeconds,
            minNewRows: configuration.minNewRows, minRows: configuration.minRows,
            runs: state.withLock { Array($0.runs.reversed()) })
    }

    /// Queues a run for every scope with enough untrained teacher answers.
    func enqueueDueScopes() async {
        let untrained: [String: (count: Int, trained: Bool)]
        do {
            untrained = try await store.untrainedTeacherLog()
        } catch {
            logger.error("cannot read the teacher log; re-distillation waits", metadata: ["distill.error": "\(error)"])
            return
        }
        let (failedAt, trainedOn) = state.withLock { ($0.failedAt, $0.trainedOn) }
        for (scope, log) in untrained.sorted(by: { $0.key < $1.key }) {
            // A student whose traffic has shifted serves it no better than none: the new answers are what it lacks.
            let shift = students.shift(scope: scope)
            let due = RetrainingSchedule.untrainedAnswersDue(
                trained: log.trained, trainedOn: trainedOn[scope], serving: students.active(scope: scope) != nil && shift == nil,
                failedAt: failedAt[scope], minRows: configuration.minRows, minNewRows: configuration.minNewRows)
            guard log.count >= due else { continue }
            let run = enqueue(scope: scope, trigger: shift == nil ? .scheduled : .shift, untrained: log.count)
            if let shift, run.trigger == .shift {
                logger.info(
                    "student training due sooner: its traffic has shifted",
                    metadata: ["distill.scope": "\(scope.prefix(12))", "distill.run": "\(run.id)", "distill.reason": "\(shift)"])
            }
        }
    }

    private func enqueue(scope: String, trigger: DistillRunTrigger, untrained: Int? = nil) -> DistillRunInfo {
        state.withLock { state in
            if let queued = state.runs.last(where: { $0.scope == scope && $0.phase == .queued }) { return queued }
            // The student's network and each cross-fitting fold's count their epochs.
            let run = DistillRunInfo(
                id: state.nextID, scope: scope, trigger: trigger, queuedAt: clock.now,
                maxEpochs: training.maxEpochs * (1 + training.calibrationFolds))
            state.nextID += 1
            state.runs.append(run)
            if let untrained, trigger != .manual { state.pendingUntrained[run.id] = untrained }
            return run
        }
    }

    private func nextQueuedRun() -> DistillRunInfo? {
        state.withLock { $0.runs.first { $0.phase == .queued } }
    }

    private func update(_ id: Int, _ change: (inout DistillRunInfo) -> Void) {
        state.withLock { state in
            if let index = state.runs.firstIndex(where: { $0.id == id }) { change(&state.runs[index]) }
        }
    }

    /// Trains, evaluates and stores one candidate; records how the run ended.
    private func execute(_ run: DistillRunInfo) async {
        update(run.id) {
            $0.phase = .loading
            $0.startedAt = clock.now
        }
        let started = ContinuousClock.now
        let ending: (outcome: DistillRunOutcome, reason: String, version: Int64?)
        do {
            ending = try await distill(run)
        } catch .cancelled {
            ending = (.cancelled, "the daemon is shutting down", nil)
        } catch {
            ending = (.failed, "\(error)", nil)
        }
        let seconds = (ContinuousClock.now - started) / .seconds(1)
        metrics.recordDistillRun(ending.outcome, trainingSeconds: seconds)
        releaseMemory()
        state.withLock { state in
            if let index = state.runs.firstIndex(where: { $0.id == run.id }) {
                state.runs[index].phase = .finished
                state.runs[index].finishedAt = clock.now
                (state.runs[index].outcome, state.runs[index].reason, state.runs[index].version) = ending
                // A stored version's rows set the scope's next step (`untrainedAnswersDue`).
                if ending.version != nil, let rows = state.runs[index].rows { state.trainedOn[run.scope] = rows }
            }
            let untrained = state.pendingUntrained.removeValue(forKey: run.id)
            if ending.outcome == .failed, let untrained { state.failedAt[run.scope] = untrained } else { state.failedAt[run.scope] = nil }
            let finished = state.runs.indices.filter { state.runs[$0].isFinished }
            if finished.count > Self.finishedRunsKept { state.runs.remove(at: finished[0]) }
        }
        let level: Logger.Level = ending.outcome == .failed ? .warning : .info
        logger.log(
            level: level, "student training \(ending.outcome.rawValue)",
            metadata: [
                "distill.scope": "\(run.scope.prefix(12))", "distill.run": "\(run.id)", "distill.reason": "\(ending.reason)",
                "distill.version": "\(ending.version.map(String.init) ?? "-")",
                "distill.seconds": "\(seconds.formatted(.number.precision(.fractionLength(1))))",
            ])
    }

    /// The run's work: the scope's newest teacher answers (embedded where the request path did not),
    /// a candidate trained on them, the gate on the held-out fold, the stored version.
    private func distill(_ run: DistillRunInfo) async throws(DistillRunError) -> (outcome: DistillRunOutcome, reason: String, version: Int64?) {
        let rows: [(record: TeacherLogRecord, vector: [Float])]
        do {
            rows = try await embedded(try await store.latestTeacherLog(scope: run.scope, limit: configuration.maxRows), run: run)
        } catch is CancellationError {
            throw .cancelled
        } catch {
            throw .preparation("\(error)")
        }
        update(run.id) {
            $0.rows = rows.count
            $0.phase = .training
        }
        let active = students.active(scope: run.scope)
        let split = fold.split(rows, prompt: \.record.prompt, answer: \.record.answer)
        var training = split.training.map(Self.exchange), holdout = split.holdout.map(Self.exchange)
        if let active, let weights = HoldoutWeights.poststratified(
            activeAccepts: activeStratum(active, rows: split.holdout + split.training), activeCoverage: active.coverage)
        {
            for index in holdout.indices { holdout[index].weight = weights[index] }
            for index in training.indices { training[index].weight = weights[holdout.count + index] }
        }
        let trainingStarted = ContinuousClock.now
        let result = try await train(training, holdout: holdout, run: run)
        let trainingSeconds = (ContinuousClock.now - trainingStarted) / .seconds(1)
        update(run.id) { $0.phase = .evaluating }

        let outcomes = result.model.outcomes(holdout)
        let incumbent = active.map { (version: $0.version, outcomes: $0.model.outcomes(holdout)) }
        let decision = gate.decide(candidate: outcomes, active: incumbent?.outcomes)
        let estimate = TrafficEstimate(outcomes)
        let report = result.model.report
        let versionMetrics = StudentVersionMetrics(
            embeddingModel: students.embeddingModel, classes: result.model.classes.count,
            threshold: result.model.threshold.map(Double.init), temperature: Double(result.model.temperature),
            trainingRows: report.trainingCount, softTargetRows: report.softTargetCount, epochs: report.epochs,
            bestEpoch: report.bestEpoch, calibrationErrorBefore: report.calibrationErrorBefore,
            calibrationErrorAfter: report.calibrationErrorAfter, holdout: HoldoutCounts(report.holdout),
            floatHoldout: HoldoutCounts(result.floatModel.report.holdout), trafficCoverage: estimate.coverage,
            trafficAgreement: estimate.acceptedAgreement.share,
            incumbent: incumbent.map { .init(version: $0.version, holdout: HoldoutCounts(HoldoutMetrics($0.outcomes))) },
            decision: decision.description)
        let record = StudentVersionRecord(
            scope: run.scope, createdAt: clock.now, status: decision.promotes ? .active : .rejected,
            model: result.model.encoded(), metrics: String(decoding: JSONValue.encode(versionMetrics), as: UTF8.self),
            trainedThrough: rows.last?.record.id ?? 0, trainingSeconds: trainingSeconds)
        let id: Int64
        do {
            id = try await store.addStudentVersion(record)
        } catch {
            metrics.recordStoreFailure(.studentVersions)
            throw .preparation("cannot store the version: \(error)")
        }
        guard decision.promotes else { return (.rejected, "\(decision)", id) }
        do {
            try students.install(record, id: id)
        } catch {
            throw .install(error)
        }
        return (.promoted, "\(decision)", id)
    }

    /// Per row, whether it is in the active student's confident stratum (`HoldoutWeights.confidentStratum`): its
    /// holdout and its training rows are the rows it was trained through, split by its own fold.
    private func activeStratum(_ active: Students.Serving, rows: [(record: TeacherLogRecord, vector: [Float])]) -> [Bool] {
        let predictions = rows.map { active.model.predict($0.vector) }
        let report = active.model.report
        let seen = rows.map { $0.record.id ?? 0 <= active.trainedThrough }
        let heldOut = rows.indices.map {
            seen[$0] && fold.holdsOut(rows[$0].record.prompt, rows: report.trainingCount + report.holdout.count)
        }
        return HoldoutWeights.confidentStratum(
            confidence: predictions.map(\.confidence), confident: predictions.map(\.isConfident),
            trainedOn: rows.indices.map { seen[$0] && !heldOut[$0] }, heldOut: heldOut)
    }

    /// `rows` with their embeddings: those the request path did not compute are computed and stored
    /// now. Rows without a prompt or an answer are left out.
    private func embedded(_ rows: [TeacherLogRecord], run: DistillRunInfo) async throws -> [(record: TeacherLogRecord, vector: [Float])] {
        let dimension = embedder.identity.dimension
        var rows = rows.filter { !$0.prompt.isEmpty && !$0.answer.isEmpty }.map { record in
            (record: record, vector: record.embedding.map(CacheEntryRecord.decode) ?? [])
        }
        let missing = rows.indices.filter { rows[$0].vector.count != dimension }
        if !missing.isEmpty { update(run.id) { $0.phase = .embedding } }
        for start in stride(from: 0, to: missing.count, by: 64) {
            try Task.checkCancellation()
            let batch = missing[start..<min(start + 64, missing.count)]
            let vectors = try await embedder.embed(batch.map { rows[$0].record.prompt })
            try await store.setTeacherLogEmbeddings(zip(batch, vectors).map { (rows[$0].record.id!, $1) })
            for (index, vector) in zip(batch, vectors) { rows[index].vector = vector }
        }
        return rows
    }

    /// A logged exchange as the trainer sees it: the soft targets are the first generated token's
    /// `top_logprobs`.
    static func exchange(_ row: (record: TeacherLogRecord, vector: [Float])) -> TeacherExchange {
        let first = row.record.topLogprobs
            .flatMap { try? JSONDecoder().decode([TokenLogprob].self, from: Data($0.utf8)) }?
            .first
        return TeacherExchange(
            embedding: row.vector, answer: row.record.answer,
            alternatives: first?.topLogprobs.map { (text: $0.token, logprob: $0.logprob) } ?? [])
    }

    /// Trains on a thread of its own, at low priority; cancelling the task stops it before the next epoch.
    private func train(
        _ exchanges: [TeacherExchange], holdout: [TeacherExchange], run: DistillRunInfo
    ) async throws(DistillRunError) -> TrainingResult {
        let stop = StopFlag()
        let (configuration, trainer) = (training, trainer)
        let result: Result<TrainingResult, StudentTrainingError> = await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let thread = Thread { [self] in
                    // Serving comes first: this thread (Linux nice values are per thread) yields to the
                    // request path under load.
                    setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, 10)
                    var epoch = 0
                    continuation.resume(
                        returning: Result { () throws(StudentTrainingError) in
                            try trainer(exchanges, holdout, configuration) {
                                epoch += 1
                                update(run.id) { $0.epoch = epoch }
                                return stop.isSet
                            }
                        })
                }
                thread.name = "distill-training"
                thread.start()
            }
        } onCancel: {
            stop.set()
        }
        do {
            return try result.get()
        } catch .cancelled {
            throw .cancelled
        } catch {
            throw .training(error)
        }
    }
}

enum DistillRunError: Error, CustomStringConvertible {
    case preparation(String)
    case training(StudentTrainingError)
    case install(StudentInstallError)
    case cancelled

    var description: String {
        switch self {
        case .preparation(let reason): "\(reason)"
        case .training(let error): "\(error)"
        case .install(let error): "the new version cannot serve: \(error)"
        case .cancelled: "cancelled"
        }
    }
}

/// Set once, read from the training thread.
private final class StopFlag: Sendable {
    private let flag = Atomic(false)
    var isSet: Bool { flag.load(ordering: .relaxed) }
    func set() { flag.store(true, ordering: .relaxed) }
}

extension HoldoutCounts {
    init(_ metrics: HoldoutMetrics) {
        self.init(
            count: metrics.count, agreeing: metrics.agreeing, accepted: metrics.accepted,
            agreeingAccepted: metrics.agreeingAccepted)
    }
}
