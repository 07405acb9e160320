/// Whether a candidate student replaces the active one, judged on both students' outcomes on the same held-out
/// teacher exchanges (the candidate's holdout: traffic the active student never trained on), each weighted by how
/// many requests of the traffic it stands for (`HoldoutWeights`).
///
/// Both students' τ turn agreement above the target into coverage, so coverage at τ is what a better student
/// gains, and the target is the only bar on agreement. The rule, in order:
/// 1. The candidate must accept some of the holdout, and its agreement there must not be below the target beyond
///    noise (the Wilson upper bound with `z` under it). Its τ already holds the target by the Wilson lower bound
///    over the holdout and the cross-fitted training answers, about five times as many; asking the holdout alone
///    for the point share or for 50 accepted rejected candidates on sampling noise (docs/benchmarks.md, Replay).
/// 2. With no active student, it is promoted.
/// 3. An active student whose accepted agreement is below the target beyond noise is failing on today's traffic:
///    the candidate replaces it.
/// 4. Otherwise its coverage must exceed the active's by more than z standard errors of the difference: on
///    holdouts of a few hundred requests coverage moves by points from sampling alone, and a swap for less is
///    churn (a flat 1-point margin promoted a student that then served worse, docs/benchmarks.md). Both accept
///    mostly the same requests, so the difference is paired: only the requests one of them accepts and the other
///    does not count.
///
/// Agreement above the target is not compared: an active student with a strict τ agrees more than any candidate
/// calibrated to the target. Asking candidates to match it kept a first student serving 22% of a replay's requests
/// at 99.3% agreement to the end, 18 candidates turned away; without it, students served 70.5% at 96.6%
/// (docs/benchmarks.md, Replay).
public struct PromotionGate: Sendable, Hashable {
    public var targetAgreement = 0.95
    /// One-sided z of the noise allowances (1.645: 95%).
    public var z = 1.645

    public init() {}

    /// `candidate` and `active`: the two students' outcomes on the same exchanges, in the same order.
    public func decide(candidate: [HeldOutOutcome], active: [HeldOutOutcome]?) -> PromotionDecision {
        precondition(active.map { $0.count == candidate.count } ?? true)
        let challenger = TrafficEstimate(candidate)
        let accepted = challenger.acceptedAgreement
        guard accepted.weight > 0 else { return .reject(.candidateAcceptsNothing) }
        guard accepted.upperBound(z: z) >= targetAgreement else { return .reject(.candidateBelowTarget) }
        guard let active else { return .promote(.noActiveStudent) }
        let incumbent = TrafficEstimate(active)
        let theirs = incumbent.acceptedAgreement
        if theirs.weight > 0 && theirs.upperBound(z: z) < targetAgreement { return .promote(.activeBelowTarget) }
        // The standard error of a paired difference of proportions (as in McNemar's test), of the weighted mean of
        // d = (candidate accepts) − (active accepts): √(Σ w² (d − d̄)²) / Σ w. d is 0 where both accept or neither
        // does, so the noise comes from the requests only one of them accepts.
        let gain = challenger.coverage - incumbent.coverage
        var variance = 0.0
        for (candidateOutcome, activeOutcome) in zip(candidate, active) {
            let d = Double(candidateOutcome.accepted ? 1 : 0) - Double(activeOutcome.accepted ? 1 : 0) - gain
            variance += candidateOutcome.weight * candidateOutcome.weight * d * d
        }
        let error = variance.squareRoot() / challenger.weight
        guard gain > z * error else { return .reject(.notEnoughCoverageGain) }
        return .promote(.moreCoverage)
    }
}

public enum PromotionDecision: Sendable, Hashable, CustomStringConvertible {
    case promote(Reason)
    case reject(Reason)

    public enum Reason: String, Sendable, Hashable {
        case candidateAcceptsNothing = "the candidate accepts no holdout request"
        case candidateBelowTarget = "the candidate's accepted answers agree with the teacher less than the target beyond noise"
        case noActiveStudent = "there is no active student"
        case activeBelowTarget = "the active student's accepted answers agree with the teacher less than the target beyond noise"
        case notEnoughCoverageGain = "the candidate does not answer enough more requests than the active student"
        case moreCoverage = "the candidate answers more requests at the target agreement"
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
