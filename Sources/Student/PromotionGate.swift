/// Whether a candidate student replaces the active one, judged on both students' metrics on the same holdout
/// (the candidate's: teacher traffic the active student never trained on).
///
/// Both students' τ turn agreement above the target into coverage, so coverage at τ is what a better student
/// gains, and agreement among accepted answers is the constraint. The rule, in order:
/// 1. The candidate must meet the target on the holdout with at least `minimumAccepted` accepted answers.
/// 2. With no active student, it is promoted.
/// 3. An active student whose accepted agreement is below the target beyond noise (the Wilson upper bound with
///    `z` under it) is failing on today's traffic: a candidate that meets the target replaces it.
/// 4. The candidate's accepted agreement must not be below the active's beyond noise (z standard errors of the
///    difference), and
/// 5. its coverage must exceed the active's by more than z standard errors of the difference: on holdouts of a few
///    hundred requests coverage moves by points from sampling alone, and a swap for less is churn (a flat
///    1-point margin promoted a student that then served worse, docs/benchmarks.md). Both accept mostly the same
///    requests, so the difference is paired: only the requests one of them accepts and the other does not count.
public struct PromotionGate: Sendable, Hashable {
    public var targetAgreement = 0.95
    public var minimumAccepted = 50
    /// One-sided z of the noise allowances (1.645: 95%).
    public var z = 1.645

    public init() {}

    /// `acceptedByBoth`: the holdout requests both students accept (0 when not known: the widest margin).
    public func decide(candidate: HoldoutMetrics, active: HoldoutMetrics?, acceptedByBoth: Int = 0) -> PromotionDecision {
        guard candidate.accepted >= minimumAccepted else { return .reject(.candidateAnswersTooFew) }
        guard candidate.acceptedAgreement >= targetAgreement else { return .reject(.candidateBelowTarget) }
        guard let active else { return .promote(.noActiveStudent) }
        if active.accepted > 0 {
            let failures = active.accepted - active.agreeingAccepted
            let upperBound = 1 - Calibration.wilsonLowerBound(successes: failures, trials: active.accepted, z: z)
            if upperBound < targetAgreement { return .promote(.activeBelowTarget) }
            let c = candidate.acceptedAgreement, a = active.acceptedAgreement
            let error = (c * (1 - c) / Double(candidate.accepted) + a * (1 - a) / Double(active.accepted)).squareRoot()
            if c < a - z * error { return .reject(.lessAgreement) }
        }
        // The standard error of a paired difference of proportions (as in McNemar's test): from the requests
        // only the candidate accepts (b) and only the active does (c), √(b + c − (b − c)²/n) / n.
        let n = Double(candidate.count)
        let b = Double(candidate.accepted - acceptedByBoth), c = Double(active.accepted - acceptedByBoth)
        let error = max(0, b + c - (b - c) * (b - c) / n).squareRoot() / n
        guard candidate.coverage > active.coverage + z * error else { return .reject(.notEnoughCoverageGain) }
        return .promote(.moreCoverage)
    }
}

public enum PromotionDecision: Sendable, Hashable, CustomStringConvertible {
    case promote(Reason)
    case reject(Reason)

    public enum Reason: String, Sendable, Hashable {
        case candidateAnswersTooFew = "the candidate accepts too few holdout requests"
        case candidateBelowTarget = "the candidate's accepted answers agree with the teacher less than the target"
        case noActiveStudent = "there is no active student"
        case activeBelowTarget = "the active student's accepted answers agree with the teacher less than the target"
        case lessAgreement = "the candidate's accepted answers agree with the teacher less than the active student's"
        case notEnoughCoverageGain = "the candidate does not answer enough more requests than the active student"
        case moreCoverage = "the candidate answers more requests at no less agreement"
    }

    public var promotes: Bool {
        if case .promote = self { true } else { false }
    }

    public var description: String {
        switch self {
        case .promote(let reason): "promote: \(reason.rawValue)"
        case .reject(let reason): "reject: \(reason.rawValue)"
        }
    }
}
