/// The share of a student's confident answers that the teacher answers instead, to be compared (audited): raised
/// where the risk is. Each raise is a floor, so the highest applicable share is in force.
///
/// - A version's first `firstAnswers` answers, where they are its own (`Precedent`): a new version has only its
///   holdout behind it, but an answer the version it replaced would have served alike was audited as that version's,
///   and its sequential test did not suspend it: the raise is spent on what the new version adds.
/// - After a shift is suspected (`ShiftRule.suspected`): the traffic may no longer be what it learned.
/// - Borderline answers (`StudentPrediction.borderline`): served, but nearer than most to what it never learned.
///
/// A shift raises the share of every answer alike, so the audits stay a fair sample of what is served. The others
/// do not: an audit of a borderline answer, or of a new version's own answer, stands for fewer served answers, and
/// weighs `auditWeight` in the sequential test, so that the test judges the served answers, not the riskiest of them.
public struct AuditPolicy: Sendable, Hashable {
    /// What the version a new one replaced would have made of the same request.
    public enum Precedent: Sendable, Hashable {
        /// There was none (or it was suspended): every answer is the version's own.
        case none
        /// It would have served the same answer.
        case same
        /// It would have served another answer, or none.
        case differs
    }

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
    public func share(answered: Int, precedent: Precedent, borderline: Bool, shiftSuspected: Bool) -> Double {
        var share = baseShare
        if answered < firstAnswers && precedent != .same { share = max(share, firstShare) }
        if shiftSuspected { share = max(share, shiftShare) }
        if borderline { share = max(share, borderlineShare) }
        return share
    }

    /// The weight in the sequential test of an audit picked at `share(…)`: the share of the least audited answer at
    /// the same moment (not borderline, and its predecessor's when there is one) over its own (1 unless a raise of
    /// some answers only applied; 1 too when only raised answers are audited, as there is nothing to weigh them
    /// against).
    public func auditWeight(answered: Int, precedent: Precedent, borderline: Bool, shiftSuspected: Bool) -> Double {
        let own = share(answered: answered, precedent: precedent, borderline: borderline, shiftSuspected: shiftSuspected)
        let plain = share(
            answered: answered, precedent: precedent == .none ? .none : .same, borderline: false, shiftSuspected: shiftSuspected)
        return plain > 0 ? plain / own : 1
    }
}
