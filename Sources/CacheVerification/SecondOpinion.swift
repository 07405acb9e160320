import Foundation

/// The scope's student as a second opinion on a candidate the verifier would not serve alone.
///
/// When the student, not confident enough to answer alone, predicts the candidate's cached answer, two views that
/// err differently agree: the teacher's answer to the nearest cached request, and a classifier of everything the
/// teacher answered in the scope. How often such an agreement is wrong is learned per scope from the teacher's
/// answers to those lookups (free while they are not served: the teacher answers them anyway), and they are served
/// once the upper confidence bound of that rate, over about the latest `window` lessons, is within δ. A share of
/// them (`auditShare`) still goes to the teacher, so that the rate stays measured where it is served.
public struct SecondOpinion: Sendable, Equatable, Codable {
    /// Lessons and wrong ones, each weighed by how recent it is (every lesson multiplies the weights of those
    /// before by 1 − 1/`window`).
    public var lessons = 0.0
    public var wrong = 0.0
    /// Seconded candidates served, and those sent to the teacher although they could have been.
    public var served = 0
    public var audits = 0

    /// About how many of the latest lessons the rate is measured over.
    public static let window = 500.0
    /// The share of servable seconded candidates the teacher answers anyway: as a new student version's own answers
    /// (`AuditPolicy.firstShare`), since, like them, they have only their own record behind them.
    public static let auditShare = 0.1

    public enum Decision: Sendable, Equatable {
        /// Serve the cached answer.
        case serve
        /// The teacher answers, to keep the rate measured where it is served.
        case audit
        /// The teacher answers: the rate is not yet known to be within δ.
        case learn
    }

    public init() {}

    /// The one-sided upper confidence bound (Wilson's, at `z` standard deviations) of the wrong rate.
    public func upperBound(z: Double) -> Double {
        guard lessons > 0 else { return 1 }
        let rate = wrong / lessons, z2 = z * z
        let centre = rate + z2 / (2 * lessons)
        let spread = z * (rate * (1 - rate) / lessons + z2 / (4 * lessons * lessons)).squareRoot()
        return min((centre + spread) / (1 + z2 / lessons), 1)
    }

    /// What to do with a seconded candidate; `draw`: uniform in [0, 1), for audits.
    public mutating func decide(maxWrongRate: Double, z: Double, draw: Double) -> Decision {
        guard upperBound(z: z) <= maxWrongRate else { return .learn }
        if draw < Self.auditShare {
            audits += 1
            return .audit
        }
        served += 1
        return .serve
    }

    /// Takes in whether the teacher's answer differed from the seconded candidate's.
    public mutating func learn(wrong isWrong: Bool) {
        let kept = 1 - 1 / Self.window
        lessons = lessons * kept + 1
        wrong = wrong * kept + (isWrong ? 1 : 0)
    }
}
