import DistillAPI
import Foundation
import Logging
import Storage
import Student
import Synchronization

/// The students in service: each scope's active version, what it may answer, and how its audited
/// answers agree with the teacher.
///
/// A scope's student answers a request when its calibrated confidence reaches τ and the request looks like what it
/// learned (`StudentPrediction.serves`): a confident request beyond its novelty threshold goes to the teacher (a
/// novelty abstention), and so does one beyond its strict threshold while a shift of the scope's traffic is
/// suspected (`ShiftRule`), every confident request while a shift is evident, or one nearer to a request the teacher
/// answered with a class it does not have than to its predicted class's exemplars (`UnknownAnswers`). A share of the
/// answers it would give (`AuditPolicy`: `student.audit_share`, raised for a version's first answers, borderline
/// requests and after a shift is suspected; picked by content: `auditKey`) goes to the teacher instead, and the
/// teacher's answer is compared with the student's. A sequential test of those audits (`SequentialTest`, held to the
/// target agreement) suspends the version (persistently) once they fall below the target, and the teacher answers
/// the scope until a new version passes the promotion gate.
///
/// The tests' state (the audits' and the shift rule's) lives in memory, per serving version: a restart, or a new
/// version, starts them afresh. A suspension is stored, and survives both. On a store shared by several nodes
/// (`SharedAuditTests`), a version's audit test is kept in the store instead: one test of every node's audits,
/// which survives restarts; the shift rule stays per node.
public final class Students: Sendable {
    /// What the student makes of one request.
    public struct Decision: Sendable {
        public enum Action: Sendable, CaseIterable {
            /// Confident: the student answers.
            case answer
            /// Confident, and picked for an audit: the teacher answers, and the two are compared.
            case audit
            /// Below τ: the teacher answers.
            case unsure
            /// Confident, but unlike what it learned (novel, borderline while a shift is suspected, anything while a
            /// shift is evident, or nearer to a class the teacher started giving: `UnknownAnswers`): the teacher answers.
            case novel
        }

        public var action: Action
        public var scope: String
        public var version: Int64
        public var prediction: StudentPrediction
        /// For an audit: how much it weighs in the audits' sequential test (`AuditPolicy.auditWeight`).
        public var auditWeight = 1.0
    }

    struct Serving {
        var version: Int64
        var model: StudentModel
        /// The newest teacher answer it was trained through (`StudentVersionRecord.trainedThrough`).
        var trainedThrough: Int64
        /// The share of the traffic it is expected to answer, and its agreement there (`StudentVersionMetrics`).
        var traffic: (coverage: Double, agreement: Double)
        /// Requests it has decided since it started serving, and those it was confident on (audits included).
        var decided: Int64 = 0
        var confident: Int64 = 0
        var answered: Int64 = 0
        /// The latest audits (true: the teacher agreed), oldest first, at most `audit_window`: the live agreement shown.
        var audits: [Bool] = []
        /// The sequential test of all its audits: suspends it when it alarms.
        var auditTest: SequentialTest
        /// The shift rule's test over the requests it is confident on (`ShiftRule.noveltyTest`).
        var noveltyTest: SequentialTest
        /// Confident requests turned away for novelty.
        var novelAbstentions: Int64 = 0
        /// Teacher answers to its requests that are none of its classes: the classes the teacher started giving.
        var unknownAnswers: UnknownAnswers
        var suspended = false

        /// The share of its requests it is confident on, as counted once it has decided `minimumDecisionsCounted`.
        var liveCoverage: Double? {
            decided >= Students.minimumDecisionsCounted ? Double(confident) / Double(decided) : nil
        }

        /// The share of the traffic it is confident on: counted where it can be, else the estimate made when it was
        /// promoted. Each version's estimate came from its own weighted holdout, which the previous version's
        /// coverage weighted: chained, the estimates drifted from the live shares by half (docs/benchmarks.md,
        /// Replay), and the next candidate's weights with them.
        var coverage: Double { liveCoverage ?? traffic.coverage }
    }

    /// Live coverage is counted over at least this many decisions (a standard error of at most 3.5 points).
    static let minimumDecisionsCounted: Int64 = 200

    /// Teacher answers that are none of the classes, kept per version to notice new ones.
    static let unknownAnswersKept = 500

    let store: any DistillStore
    let configuration: StudentSettings
    let auditPolicy: AuditPolicy
    /// The audits' test: the target agreement, failing 5 points below it, a false alarm per 10,000 audits at most.
    let auditTest: SequentialTest.Configuration
    let shiftRule = ShiftRule()
    /// The embedding model of the request vectors; versions trained on another model's are not served.
    let embeddingModel: String
    let metrics: any DomainMetrics
    let logger: Logger
    /// Of a store shared by several nodes: the audits' tests, one per version for every node's audits. Without it
    /// (one node), each version's test lives in memory.
    let sharedAudits: (any SharedAuditTests)?
    private let serving = Mutex<[String: Serving]>([:])
    /// Scopes an operator took out of service (`cachectl student disable`): whatever version they have,
    /// the teacher answers them. Kept in the store's metadata under `disabledScopesKey`.
    private let disabled = Mutex<Set<String>>([])
    static let disabledScopesKey = "students_disabled_scopes"

    init(
        store: any DistillStore, configuration: StudentSettings, embeddingModel: String, metrics: any DomainMetrics,
        logger: Logger
    ) {
        self.store = store
        self.configuration = configuration
        auditPolicy = AuditPolicy(baseShare: configuration.auditShare)
        // The test needs a target below 1; a margin below a target of at least 0.5.
        auditTest = SequentialTest.Configuration(
            target: min(configuration.targetAgreement, 0.99), margin: 0.05, falseAlarmEvery: 10_000)
        self.embeddingModel = embeddingModel
        self.metrics = metrics
        self.logger = logger
        sharedAudits = store as? any SharedAuditTests
    }

    /// Loads every scope's current version from the store: the active one, or a suspended one,
    /// which stays suspended.
    public static func open(
        store: any DistillStore, configuration: StudentSettings, embeddingModel: String, metrics: any DomainMetrics,
        logger: Logger
    ) async throws -> Students {
        let students = Students(
            store: store, configuration: configuration, embeddingModel: embeddingModel, metrics: metrics, logger: logger)
        if let stored = try await store.metadata(disabledScopesKey) {
            let scopes = try JSONDecoder().decode([String].self, from: Data(stored.utf8))
            students.disabled.withLock { $0 = Set(scopes) }
        }
        for record in try await store.currentStudentVersions() {
            guard let id = record.id else { continue }
            do {
                try students.install(record, id: id, suspended: record.status == .suspended)
            } catch {
                logger.error(
                    "a stored student cannot serve; its scope is answered by the teacher until a new version passes",
                    metadata: ["distill.version": "\(id)", "distill.error": "\(error)"])
            }
        }
        return students
    }

    /// The scope's serving version, if it has one that is not suspended.
    func active(scope: String) -> Serving? {
        serving.withLock { state in
            state[scope].flatMap { $0.suspended ? nil : $0 }
        }
    }

    /// The newest teacher answer the scope's current version (serving or suspended) learned from.
    func trainedThrough(scope: String) -> Int64? {
        serving.withLock { $0[scope]?.trainedThrough }
    }

    /// Takes a scope's student out of service (its versions are kept; new ones are still trained and
    /// judged), or puts it back. Persists before it applies.
    public func setEnabled(_ enabled: Bool, scope: String) async throws(DistillError) {
        var scopes = disabled.withLock { $0 }
        if enabled { scopes.remove(scope) } else { scopes.insert(scope) }
        do {
            let encoded = try JSONEncoder().encode(scopes.sorted())
            try await store.setMetadata(Self.disabledScopesKey, String(decoding: encoded, as: UTF8.self))
        } catch {
            throw .storageUnavailable("\(error)")
        }
        disabled.withLock { $0 = scopes }
        logger.notice(
            enabled ? "student enabled for its scope" : "student disabled for its scope: the teacher answers it",
            metadata: ["distill.scope": "\(scope.prefix(12))"])
    }

    /// What the scope's student makes of a request's embedding; nil when the scope has no student serving.
    public func decide(scope: String, vector: [Float]) -> Decision? {
        guard !disabled.withLock({ $0.contains(scope) }) else { return nil }
        let decision = serving.withLock { state -> Decision? in
            guard var current = state[scope], !current.suspended else { return nil }
            let prediction = current.model.predict(vector)
            var decision = Decision(action: .unsure, scope: scope, version: current.version, prediction: prediction)
            current.decided += 1
            if prediction.isConfident {
                current.confident += 1
                shiftRule.observe(prediction, in: &current.noveltyTest)
                let shift = shiftSuspected(current)
                if prediction.serves(shiftSuspected: shift) && !shiftEvident(current)
                    && !current.unknownAnswers.nearerToNewClass(vector, than: prediction)
                {
                    // Its answers so far: those served and those audited.
                    let given = Int(current.confident - current.novelAbstentions) - 1
                    let share = auditPolicy.share(answered: given, borderline: prediction.borderline, shiftSuspected: shift)
                    let audit = Self.auditKey(vector) < share
                    decision.action = audit ? .audit : .answer
                    decision.auditWeight = auditPolicy.auditWeight(
                        answered: given, borderline: prediction.borderline, shiftSuspected: shift)
                    if !audit { current.answered += 1 }
                } else {
                    decision.action = .novel
                    current.novelAbstentions += 1
                }
            }
            state[scope] = current
            return decision
        }
        if let decision { metrics.recordStudentDecision(decision.action) }
        return decision
    }

    func shiftSuspected(_ version: Serving) -> Bool {
        shiftRule.suspected(
            novelty: version.noveltyTest, audits: version.auditTest, newClasses: version.unknownAnswers.newClasses)
    }

    func shiftEvident(_ version: Serving) -> Bool {
        shiftRule.evident(novelty: version.noveltyTest)
    }

    /// Why the scope's serving student is due for training before the regular step (`ShiftRule.dueSooner`), or nil.
    public func shift(scope: String) -> ShiftReason? {
        serving.withLock { state in
            state[scope].flatMap { current in
                current.suspended
                    ? nil
                    : shiftRule.dueSooner(
                        novelty: current.noveltyTest, novelAbstentions: Int(current.novelAbstentions),
                        newClasses: current.unknownAnswers.newClasses)
            }
        }
    }

    /// Where a request's embedding falls in [0, 1): it is audited when below `audit_share`.
    ///
    /// By content rather than by arrival (every n-th confident answer), so that the same traffic is audited
    /// the same way however its concurrent requests interleave (the replay's reproducibility). The hash is of
    /// the components' signs, which batching leaves alone where it moves the last bits. A query picked once is
    /// picked every time, but its audit caches the teacher's answer, so its repeats are cache hits.
    static func auditKey(_ vector: [Float]) -> Double {
        var signs = [UInt8](repeating: 0, count: (vector.count + 7) / 8)
        for (index, value) in vector.enumerated() where value < 0 { signs[index / 8] |= 1 << (index % 8) }
        return ContentKey.unit(signs)
    }

    /// What the teacher answered to a request the scope's student decided on (with its embedding): an answer that is
    /// none of its classes may be a new class; an audit is compared with the student's answer, and the version is
    /// suspended once the audits' sequential test alarms.
    func recordTeacherAnswer(_ decision: Decision, vector: [Float]?, teacherAnswer: String) async {
        let outcome = serving.withLock { state -> (agrees: Bool, live: Double, suspend: Bool)? in
            guard var current = state[decision.scope], current.version == decision.version, !current.suspended else { return nil }
            defer { state[decision.scope] = current }
            let answerClass = current.model.classes.index(of: teacherAnswer)
            if answerClass == nil {
                current.unknownAnswers.add(teacherAnswer, embedding: vector, classes: current.model.classes)
            }
            guard case .audit = decision.action else { return nil }
            let agrees = answerClass == decision.prediction.classIndex
            current.audits.append(agrees)
            if current.audits.count > configuration.auditWindow { current.audits.removeFirst() }
            if sharedAudits == nil { current.suspended = current.auditTest.record(agrees, weight: decision.auditWeight) }
            return (agrees, Double(current.audits.count { $0 }) / Double(current.audits.count), current.suspended)
        }
        guard var outcome else { return }
        if let sharedAudits {
            guard let suspended = await recordShared(decision, agrees: outcome.agrees, in: sharedAudits) else { return }
            outcome.suspend = suspended
        }
        metrics.recordStudentAudit(agrees: outcome.agrees, scope: decision.scope, liveAgreement: outcome.live)
        guard outcome.suspend else { return }
        metrics.recordStudentSuspension()
        logger.warning(
            "the student's audited answers agree with the teacher less than the target; the teacher answers its scope until a new version passes",
            metadata: [
                "distill.scope": "\(decision.scope.prefix(12))", "distill.version": "\(decision.version)",
                "distill.live_agreement": "\(outcome.live.formatted(.number.precision(.fractionLength(3))))",
            ])
        // A shared store suspended it with the audit that alarmed.
        guard sharedAudits == nil else { return }
        do {
            try await store.setStudentVersionStatus(id: decision.version, .suspended)
        } catch {
            metrics.recordStoreFailure(.studentVersions)
            logger.error(
                "cannot record the suspension; the version stays suspended until restart",
                metadata: ["distill.version": "\(decision.version)", "distill.error": "\(error)"])
        }
    }

    /// Takes an audit into the one test of every node's audits of its version, kept by the shared store, and
    /// serves what the test now says: whether this audit suspended the version; nil when the store could not count it
    /// (the audit is lost to the test).
    private func recordShared(_ decision: Decision, agrees: Bool, in shared: any SharedAuditTests) async -> Bool? {
        let (configuration, weight) = (auditTest, decision.auditWeight)
        let recorded: (test: AuditTestRecord, suspended: Bool)
        do {
            recorded = try await shared.recordAudit(version: decision.version) { stored in
                var test = SequentialTest(stored, configuration)
                test.record(agrees, weight: weight)
                return AuditTestRecord(test)
            }
        } catch {
            metrics.recordStoreFailure(.studentVersions)
            logger.warning(
                "cannot count an audit in the version's shared test; it is left out",
                metadata: ["distill.version": "\(decision.version)", "distill.error": "\(error)"])
            return nil
        }
        let test = SequentialTest(recorded.test, configuration)
        serving.withLock { state in
            // Audits of this node that committed out of order: the test with the most observations is the latest.
            guard var current = state[decision.scope], current.version == decision.version,
                test.observations > current.auditTest.observations
            else { return }
            current.auditTest = test
            current.suspended = current.suspended || test.alarmed
            state[decision.scope] = current
        }
        return recorded.suspended
    }

    /// Puts a stored version in service for its scope, replacing whatever served it; `suspended`:
    /// in its place, but the teacher answers.
    func install(_ record: StudentVersionRecord, id: Int64, suspended: Bool = false) throws(StudentInstallError) {
        var version = try prepare(record, id: id)
        version.suspended = suspended
        serve(version, scope: record.scope)
    }

    /// A stored version, ready to serve: trained on this embedding model's vectors, and decodable.
    private func prepare(_ record: StudentVersionRecord, id: Int64) throws(StudentInstallError) -> Serving {
        guard let metrics = try? JSONDecoder().decode(StudentVersionMetrics.self, from: Data(record.metrics.utf8)) else {
            throw .unreadableMetrics
        }
        guard metrics.embeddingModel == embeddingModel else {
            throw .otherEmbeddingModel(metrics.embeddingModel)
        }
        let model: StudentModel
        do {
            model = try StudentModel(encoded: record.model)
        } catch {
            throw .undecodable(error)
        }
        return Serving(
            version: id, model: model, trainedThrough: record.trainedThrough, traffic: metrics.expected,
            auditTest: SequentialTest(auditTest), noveltyTest: shiftRule.noveltyTest(),
            unknownAnswers: UnknownAnswers(limit: Self.unknownAnswersKept, minSupport: configuration.minSupport))
    }

    private func serve(_ version: Serving, scope: String) {
        serving.withLock { $0[scope] = version }
        logger.info("student serving", metadata: ["distill.scope": "\(scope.prefix(12))", "distill.version": "\(version.version)"])
    }

    /// Serves the scope's current version as the store has it, after another node changed its
    /// versions (a promotion, a rollback, a suspension): the version hot-swaps in, or the scope
    /// goes back to the teacher when it has none.
    public func follow(scope: String) async throws {
        let current = try await store.currentStudentVersions().first { $0.scope == scope }
        guard let current, let id = current.id else {
            serving.withLock { $0[scope] = nil }
            return
        }
        let suspended = current.status == .suspended
        let alreadyServing = serving.withLock { serving in
            // The same version suspended stays as it is; back in service, it starts afresh (as `activate` has it).
            guard serving[scope]?.version == id, suspended || serving[scope]?.suspended == false else { return false }
            serving[scope]?.suspended = suspended
            return true
        }
        guard !alreadyServing else { return }
        do {
            try install(current, id: id, suspended: suspended)
        } catch {
            logger.error(
                "another node's student version cannot serve here; its scope is answered by the teacher",
                metadata: ["distill.version": "\(id)", "distill.error": "\(error)"])
            serving.withLock { _ = $0.removeValue(forKey: scope) }
        }
    }

    /// `cachectl student promote V`: makes a stored version its scope's active one. A version the gate
    /// rejected only with `force`: the operator overrules the gate knowingly.
    public func promote(version id: Int64, force: Bool = false) async throws(DistillError) -> StudentVersionRecord {
        let found: StudentVersionRecord?
        do {
            found = try await store.studentVersion(id: id)
        } catch {
            throw .storageUnavailable("\(error)")
        }
        guard let record = found else { throw .unknownVersion(id) }
        guard record.status != .rejected || force else { throw .versionRejected(id) }
        return try await activate(record, id: id)
    }

    /// `cachectl student rollback`: the scope's version before the current one (active or suspended)
    /// serves again. `scope` may be nil when only one scope has versions.
    public func rollback(scope: String?) async throws(DistillError) -> StudentVersionRecord {
        let versions: [StudentVersionRecord]
        do {
            versions = try await store.studentVersions(scope: scope)
        } catch {
            throw .storageUnavailable("\(error)")
        }
        let scopes = Set(versions.map(\.scope))
        guard scopes.count == 1 else {
            throw scopes.isEmpty ? .noVersions(inScope: scope != nil) : .scopeRequired(scopes: scopes.count)
        }
        // Newest first: the current version, then the newest one that served before it.
        guard let current = versions.firstIndex(where: { $0.status == .active || $0.status == .suspended }),
            let previous = versions[(current + 1)...].first(where: { $0.status == .retired }), let id = previous.id
        else {
            throw .nothingToRollBackTo
        }
        let found: StudentVersionRecord?
        do {
            found = try await store.studentVersion(id: id)
        } catch {
            throw .storageUnavailable("\(error)")
        }
        guard let record = found else { throw .unknownVersion(id) }
        return try await activate(record, id: id)
    }

    /// Activates a version in the store, then in service; a version that cannot serve is refused first.
    private func activate(_ record: StudentVersionRecord, id: Int64) async throws(DistillError) -> StudentVersionRecord {
        let version: Serving
        do {
            version = try prepare(record, id: id)
        } catch {
            throw .versionCannotServe(id: id, reason: "\(error)")
        }
        do {
            try await store.activateStudentVersion(id: id)
        } catch {
            throw .storageUnavailable("\(error)")
        }
        serve(version, scope: record.scope)
        var activated = record
        activated.status = .active
        return activated
    }

    /// Every stored version (of one scope, or all), newest first.
    public func versions(scope: String?) async throws(DistillError) -> [StudentVersionRecord] {
        do {
            return try await store.studentVersions(scope: scope)
        } catch {
            throw .storageUnavailable("\(error)")
        }
    }

    /// A scope key, or an unambiguous prefix of at least 4 characters of a scope with teacher answers.
    public func resolveScope(_ prefix: String) async throws(DistillError) -> String {
        try await Scope.resolve(prefix, amongTeacherLogScopesOf: store)
    }

    public func status() -> StudentStatus {
        let disabledScopes = disabled.withLock { $0 }
        let scopes = serving.withLock { state in
            state.map { scope, current in
                let agreeing = current.audits.count { $0 }
                var status = StudentStatus.Scope(
                    scope: scope, version: current.version, serving: !current.suspended && !disabledScopes.contains(scope),
                    threshold: current.model.threshold.map(Double.init), coverage: current.traffic.coverage,
                    holdoutAgreement: current.traffic.agreement, answered: current.answered, audits: current.audits.count,
                    liveAgreement: current.audits.isEmpty ? nil : Double(agreeing) / Double(current.audits.count),
                    liveCoverage: current.liveCoverage, disabled: disabledScopes.contains(scope))
                let shift = shiftSuspected(current)
                status.novelAbstentions = current.novelAbstentions
                status.auditShareInForce = auditPolicy.share(
                    answered: Int(current.confident - current.novelAbstentions), borderline: false, shiftSuspected: shift)
                status.auditTest = StudentStatus.SequentialTestState(current.auditTest)
                status.noveltyTest = StudentStatus.SequentialTestState(current.noveltyTest)
                status.shiftSuspected = shift
                status.shiftEvident = shiftEvident(current)
                status.newClasses = current.unknownAnswers.newClasses.map(\.answer)
                return status
            }
        }
        return StudentStatus(
            enabled: configuration.enabled, targetAgreement: configuration.targetAgreement,
            auditShare: configuration.auditShare, scopes: scopes.sorted { $0.scope < $1.scope },
            disabledScopes: disabledScopes.sorted())
    }
}

public enum StudentInstallError: Error, CustomStringConvertible {
    case unreadableMetrics
    case otherEmbeddingModel(String)
    case undecodable(StudentModelDecodingError)

    public var description: String {
        switch self {
        case .unreadableMetrics: "its stored metrics cannot be read"
        case .otherEmbeddingModel(let model): "it was trained on vectors of another embedding model (\(model))"
        case .undecodable(let error): "its stored model cannot be decoded: \(error)"
        }
    }
}

extension SequentialTest {
    init(_ stored: AuditTestRecord, _ configuration: Configuration) {
        self.init(configuration, statistic: stored.statistic, observations: stored.observations, failures: stored.failures)
    }
}

extension AuditTestRecord {
    init(_ test: SequentialTest) {
        self.init(statistic: test.statistic, observations: test.observations, failures: test.failures, alarmed: test.alarmed)
    }
}

extension StudentStatus.SequentialTestState {
    init(_ test: SequentialTest) {
        self.init(progress: test.progress, observations: test.observations, failures: test.failures, alarmed: test.alarmed)
    }
}
