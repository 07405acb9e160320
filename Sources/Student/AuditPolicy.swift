/// The share of a student's confident answers that the teacher answers instead, to be compared (audited): raised
/// where the risk is. Each raise is a floor, so the highest applicable share is in force.
///
/// - A version's first `firstAnswers` answers: a new version has only its holdout behind it.
/// - After a shift is suspected (`ShiftRule.suspected`): the traffic may no longer be what it learned.
/// - Borderline answers (`StudentPrediction.borderline`): served, but nearer than most to what it never learned.
///
/// The first two raise the share of every answer alike, so the audits stay a fair sample of what is served. The
/// third does not: a borderline audit stands for fewer served answers, and weighs `auditWeight` in the sequential
/// test, so that the test judges the served answers, not the riskiest of them.
public struct AuditPolicy: Sendable, Hashable {
    /// `student.audit_share`: the share otherwise.
    public var baseShare = 0.02
    public var firstAnswers = 500
    public var firstShare = 0.1
    public var shiftShare = 0.1
    public var borderlineShare = 0.05

    public init() {}

    public init(baseShare: Double) {
        self.baseShare = baseShare
    }

    /// Why the policy cannot decide, or nil.
    public var invalidReason: String? {
        let shares = [baseShare, firstShare, shiftShare, borderlineShare]
        if !shares.allSatisfy({ (0...1).contains($0) }) { return "audit shares must be within 0…1" }
        if firstAnswers < 0 { return "firstAnswers must not be negative" }
        return nil
    }

    /// The share in force for an answer of a version that has given `answered` confident answers before it.
    public func share(answered: Int, borderline: Bool, shiftSuspected: Bool) -> Double {
        var share = baseShare
        if answered < firstAnswers { share = max(share, firstShare) }
        if shiftSuspected { share = max(share, shiftShare) }
        if borderline { share = max(share, borderlineShare) }
        return share
    }

    /// The weight in the sequential test of an audit picked at `share(…)`: the share of an answer that is not
    /// borderline, at the same moment, over its own (1 unless borderline raised it; 1 too when only borderline
    /// answers are audited, as there is nothing to weigh them against).
    public func auditWeight(answered: Int, borderline: Bool, shiftSuspected: Bool) -> Double {
        let own = share(answered: answered, borderline: borderline, shiftSuspected: shiftSuspected)
        let plain = share(answered: answered, borderline: false, shiftSuspected: shiftSuspected)
        return plain > 0 ? plain / own : 1
    }
}
