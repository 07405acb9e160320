import Foundation

// The admin API of the students and their re-distillation (`/admin/student…`, `/admin/distill…`);
// `cachectl student` and `cachectl distill` speak it.

/// A student's answers to a set of teacher exchanges, compared with the teacher's.
public struct HoldoutCounts: Codable, Sendable, Equatable {
    public var count: Int
    /// Exchanges whose predicted answer is the teacher's.
    public var agreeing: Int
    /// Exchanges whose confidence reaches τ (the student would answer them).
    public var accepted: Int
    /// Accepted exchanges that agree.
    public var agreeingAccepted: Int

    public init(count: Int, agreeing: Int, accepted: Int, agreeingAccepted: Int) {
        (self.count, self.agreeing, self.accepted, self.agreeingAccepted) = (count, agreeing, accepted, agreeingAccepted)
    }

    public var agreement: Double { count == 0 ? 0 : Double(agreeing) / Double(count) }
    public var coverage: Double { count == 0 ? 0 : Double(accepted) / Double(count) }
    public var acceptedAgreement: Double { accepted == 0 ? 0 : Double(agreeingAccepted) / Double(accepted) }

    enum CodingKeys: String, CodingKey {
        case count, agreeing, accepted
        case agreeingAccepted = "agreeing_accepted"
    }
}

/// How a version was trained and evaluated: stored with it, shown by `cachectl student versions`.
public struct StudentVersionMetrics: Codable, Sendable, Equatable {
    /// The embedding model its inputs came from; a version of another model is never served.
    public var embeddingModel: String
    public var classes: Int
    /// τ; nil when no threshold met the target agreement (the version answers nothing).
    public var threshold: Double?
    public var temperature: Double
    public var trainingRows: Int
    /// Training rows with soft targets (the teacher's `top_logprobs`).
    public var softTargetRows: Int
    public var epochs: Int
    public var bestEpoch: Int
    /// Expected calibration error on the answers calibrated on, before and after temperature scaling.
    public var calibrationErrorBefore: Double
    public var calibrationErrorAfter: Double
    /// The served (int8) network on the holdout, the newest teacher answers.
    public var holdout: HoldoutCounts
    /// The same network in float, before quantization.
    public var floatHoldout: HoldoutCounts
    /// Coverage and accepted agreement on the holdout weighted back to the traffic (`HoldoutWeights`): what the
    /// version is expected to answer, and how well. Nil for versions stored before the weighting.
    public var trafficCoverage: Double?
    public var trafficAgreement: Double?
    /// The version it was compared with on the same holdout, if there was one.
    public var incumbent: Incumbent?
    /// The promotion gate's decision and why.
    public var decision: String

    /// What `cachectl student status` shows as the version's coverage and agreement: on the holdout
    /// weighted back to the traffic, or unweighted for versions stored before the weighting.
    public var expected: (coverage: Double, agreement: Double) {
        (trafficCoverage ?? holdout.coverage, trafficAgreement ?? holdout.acceptedAgreement)
    }

    public struct Incumbent: Codable, Sendable, Equatable {
        public var version: Int64
        public var holdout: HoldoutCounts

        public init(version: Int64, holdout: HoldoutCounts) {
            self.version = version
            self.holdout = holdout
        }
    }

    public init(
        embeddingModel: String, classes: Int, threshold: Double?, temperature: Double, trainingRows: Int,
        softTargetRows: Int, epochs: Int, bestEpoch: Int, calibrationErrorBefore: Double, calibrationErrorAfter: Double,
        holdout: HoldoutCounts, floatHoldout: HoldoutCounts, trafficCoverage: Double?, trafficAgreement: Double?,
        incumbent: Incumbent?, decision: String
    ) {
        (self.embeddingModel, self.classes, self.threshold, self.temperature) = (embeddingModel, classes, threshold, temperature)
        (self.trainingRows, self.softTargetRows, self.epochs, self.bestEpoch) = (trainingRows, softTargetRows, epochs, bestEpoch)
        (self.calibrationErrorBefore, self.calibrationErrorAfter) = (calibrationErrorBefore, calibrationErrorAfter)
        (self.holdout, self.floatHoldout, self.incumbent, self.decision) = (holdout, floatHoldout, incumbent, decision)
        (self.trafficCoverage, self.trafficAgreement) = (trafficCoverage, trafficAgreement)
    }

    enum CodingKeys: String, CodingKey {
        case classes, threshold, temperature, epochs, holdout, incumbent, decision
        case embeddingModel = "embedding_model"
        case trainingRows = "training_rows"
        case softTargetRows = "soft_target_rows"
        case bestEpoch = "best_epoch"
        case calibrationErrorBefore = "calibration_error_before"
        case calibrationErrorAfter = "calibration_error_after"
        case floatHoldout = "float_holdout"
        case trafficCoverage = "traffic_coverage"
        case trafficAgreement = "traffic_agreement"
    }
}

/// `GET /admin/student/versions`: one stored version (without its weights).
public struct StudentVersionInfo: Codable, Sendable, Equatable {
    public var id: Int64
    public var scope: String
    /// candidate, active, retired, rejected or suspended.
    public var status: String
    public var createdAt: Date
    /// The newest teacher log row it learned from.
    public var trainedThrough: Int64
    public var trainingSeconds: Double
    /// Nil for a version whose metrics cannot be read.
    public var metrics: StudentVersionMetrics?

    public init(
        id: Int64, scope: String, status: String, createdAt: Date, trainedThrough: Int64, trainingSeconds: Double,
        metrics: StudentVersionMetrics?
    ) {
        (self.id, self.scope, self.status, self.createdAt) = (id, scope, status, createdAt)
        (self.trainedThrough, self.trainingSeconds, self.metrics) = (trainedThrough, trainingSeconds, metrics)
    }

    enum CodingKeys: String, CodingKey {
        case id, scope, status, metrics
        case createdAt = "created_at"
        case trainedThrough = "trained_through"
        case trainingSeconds = "training_seconds"
    }
}

/// `GET /admin/student`: what serves each scope.
public struct StudentStatus: Codable, Sendable, Equatable {
    public var enabled: Bool
    public var targetAgreement: Double
    public var auditShare: Double
    public var scopes: [Scope]
    /// Scopes an operator took out of service (`cachectl student disable`), with a version or not.
    public var disabledScopes: [String]

    /// A scope with a serving or a suspended student.
    public struct Scope: Codable, Sendable, Equatable {
        public var scope: String
        public var version: Int64
        /// False once live agreement fell below the target (the teacher answers until a new version
        /// passes), or while the scope is disabled.
        public var serving: Bool
        public var threshold: Double?
        /// Coverage and accepted agreement at τ on the version's holdout, weighted back to the traffic.
        public var coverage: Double
        public var holdoutAgreement: Double
        /// Confident answers given since the version started serving (audits excluded).
        public var answered: Int64
        /// Audits in the live window, and the share of them where the teacher gave the student's answer.
        public var audits: Int
        public var liveAgreement: Double?
        /// The share of the requests it decided that it was confident on (audits included); nil until it has
        /// decided a few hundred.
        public var liveCoverage: Double?
        /// Taken out of service by an operator (`cachectl student disable`).
        public var disabled: Bool
        /// What the scope is, when distilld recorded it.
        public var description: ScopeDescription?
        /// Confident requests it turned away as unlike what it learned (the teacher answered them).
        public var novelAbstentions: Int64?
        /// The share of its next (not borderline) answers the teacher is asked too: raised for a version's first
        /// answers and while a shift is suspected.
        public var auditShareInForce: Double?
        /// The sequential test of its audits, which suspends it when it alarms; and the shift rule's test over the
        /// requests it is confident on (success: within its strict novelty threshold).
        public var auditTest: SequentialTestState?
        public var noveltyTest: SequentialTestState?
        /// Whether its traffic seems to have moved from what it learned: it then abstains on borderline requests too.
        public var shiftSuspected: Bool?
        /// Whether that shift is evident (its novelty test has alarmed): it then answers nothing until a new version
        /// serves.
        public var shiftEvident: Bool?
        /// Answers the teacher gives its requests repeatedly that are none of its classes.
        public var newClasses: [String]?

        public init(
            scope: String, version: Int64, serving: Bool, threshold: Double?, coverage: Double, holdoutAgreement: Double,
            answered: Int64, audits: Int, liveAgreement: Double?, liveCoverage: Double?, disabled: Bool = false
        ) {
            (self.scope, self.version, self.serving, self.threshold) = (scope, version, serving, threshold)
            (self.coverage, self.holdoutAgreement, self.answered) = (coverage, holdoutAgreement, answered)
            (self.audits, self.liveAgreement, self.liveCoverage, self.disabled) = (audits, liveAgreement, liveCoverage, disabled)
        }

        enum CodingKeys: String, CodingKey {
            case scope, version, serving, threshold, coverage, answered, audits, disabled, description
            case holdoutAgreement = "holdout_agreement"
            case liveAgreement = "live_agreement"
            case liveCoverage = "live_coverage"
            case novelAbstentions = "novel_abstentions"
            case auditShareInForce = "audit_share_in_force"
            case auditTest = "audit_test"
            case noveltyTest = "novelty_test"
            case shiftSuspected = "shift_suspected"
            case shiftEvident = "shift_evident"
            case newClasses = "new_classes"
        }
    }

    /// A sequential test's state: its statistic as a share of the way to its alarm (which is final), and what it
    /// has observed.
    public struct SequentialTestState: Codable, Sendable, Equatable {
        public var progress: Double
        public var observations: Int
        public var failures: Int
        public var alarmed: Bool

        public init(progress: Double, observations: Int, failures: Int, alarmed: Bool) {
            (self.progress, self.observations, self.failures, self.alarmed) = (progress, observations, failures, alarmed)
        }
    }

    public init(enabled: Bool, targetAgreement: Double, auditShare: Double, scopes: [Scope], disabledScopes: [String] = []) {
        (self.enabled, self.targetAgreement, self.auditShare, self.scopes) = (enabled, targetAgreement, auditShare, scopes)
        self.disabledScopes = disabledScopes
    }

    enum CodingKeys: String, CodingKey {
        case enabled, scopes
        case disabledScopes = "disabled_scopes"
        case targetAgreement = "target_agreement"
        case auditShare = "audit_share"
    }
}

/// `POST /admin/student/rollback`: the scope may be left out when only one scope has a student.
public struct StudentRollbackRequest: Codable, Sendable, Equatable {
    public var scope: String?

    public init(scope: String?) { self.scope = scope }
}

/// `PUT /admin/student/scopes/S`: whether the scope's student may answer (`cachectl student
/// enable|disable`); the reply is the scope's full key with the setting in force.
public struct StudentScopeSettings: Codable, Sendable, Equatable {
    public var scope: String?
    public var enabled: Bool

    public init(scope: String? = nil, enabled: Bool) { (self.scope, self.enabled) = (scope, enabled) }
}

/// One training of one scope's student, queued, running or finished.
public struct DistillRunInfo: Codable, Sendable, Equatable {
    public var id: Int
    public var scope: String
    public var trigger: DistillRunTrigger
    public var phase: DistillRunPhase
    public var queuedAt: Date
    public var startedAt: Date?
    public var finishedAt: Date?
    /// Teacher answers it trains and holds out on.
    public var rows: Int?
    /// Epochs run so far, and the most there may be (training stops early when the holdout stops improving).
    public var epoch: Int
    public var maxEpochs: Int
    /// When finished: how, why, and the version stored.
    public var outcome: DistillRunOutcome?
    public var reason: String?
    public var version: Int64?

    public init(id: Int, scope: String, trigger: DistillRunTrigger, queuedAt: Date, maxEpochs: Int) {
        (self.id, self.scope, self.trigger, self.phase, self.queuedAt) = (id, scope, trigger, .queued, queuedAt)
        (self.epoch, self.maxEpochs) = (0, maxEpochs)
    }

    public var isFinished: Bool { phase == .finished }

    enum CodingKeys: String, CodingKey {
        case id, scope, trigger, phase, rows, epoch, outcome, reason, version
        case queuedAt = "queued_at"
        case startedAt = "started_at"
        case finishedAt = "finished_at"
        case maxEpochs = "max_epochs"
    }
}

/// Who asked for a run: the background service (on its regular step, or sooner because the scope's traffic has
/// shifted away from what its student learned), or `cachectl distill run`.
public enum DistillRunTrigger: String, Codable, Sendable {
    case scheduled, manual, shift
}

public enum DistillRunPhase: String, Codable, Sendable {
    case queued, loading, embedding, training, evaluating, finished
}

public enum DistillRunOutcome: String, Codable, Sendable, CaseIterable {
    case promoted, rejected, failed, cancelled
}

/// `GET /admin/distill`: the re-distillation service and its runs, newest first.
public struct DistillStatus: Codable, Sendable, Equatable {
    public var enabled: Bool
    public var intervalSeconds: Double
    public var minNewRows: Int
    public var minRows: Int
    public var runs: [DistillRunInfo]

    public init(enabled: Bool, intervalSeconds: Double, minNewRows: Int, minRows: Int, runs: [DistillRunInfo]) {
        (self.enabled, self.intervalSeconds, self.minNewRows, self.minRows, self.runs) =
            (enabled, intervalSeconds, minNewRows, minRows, runs)
    }

    enum CodingKeys: String, CodingKey {
        case enabled, runs
        case intervalSeconds = "interval_seconds"
        case minNewRows = "min_new_rows"
        case minRows = "min_rows"
    }
}

/// `POST /admin/distill/runs`: train now, one scope or every scope with enough teacher answers.
public struct DistillRunRequest: Codable, Sendable, Equatable {
    public var scope: String?

    public init(scope: String?) { self.scope = scope }
}
