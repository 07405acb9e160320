import Foundation

/// Whether the share of successes in a stream of observations has fallen below a target, decided observation by
/// observation: Page's CUSUM (1954) of the log-likelihood ratio of a failing share p₁ = target − margin against
/// the target p₀. It watches a serving student's audits (success: the teacher agreed) and the requests it is
/// confident on (success: not novel, `ShiftRule`).
///
/// A success adds log(p₁/p₀) < 0 to the statistic, a failure log((1 − p₁)/(1 − p₀)) > 0, and the statistic never
/// goes below 0: a long good run does not bank credit that a later drop would first have to spend. The test
/// alarms once the statistic reaches h = log(`falseAlarmEvery`), and stays alarmed.
///
/// In plain words, for observations that each succeed independently:
/// - **False alarms.** While the share of successes is at the target or above, the test alarms wrongly less than
///   once per `falseAlarmEvery` observations on average, and within its first n observations with probability at
///   most n / `falseAlarmEvery`. (From any starting observation the likelihood ratio is then a non-negative
///   supermartingale, so it ever reaches e^h with probability ≤ e^−h (Ville's inequality); the CUSUM alarms at n
///   only if the ratio from some start k ≤ n did, and its mean run length is ≥ e^h (Lorden 1971).)
/// - **Detection.** Once the share drops to p, below the break-even p* at which an observation's expected
///   increment D(p) turns positive, the expected number of observations until the alarm is at most
///   (h + log((1 − p₁)/(1 − p₀))) / D(p), however long the stream was good before (`expectedDelay`; Wald's
///   identity, and the floor at 0 only brings the alarm sooner).
///
/// For audits, with the defaults (target 95%, margin 5 points, an alarm per 10,000 audits at the target): p* is
/// 92.8%, and a student whose agreement drops to 85% is suspended after at most 171 audits on average, at 70% after
/// at most 59.
///
/// An observation may weigh less than one (an audit picked at a raised share stands for fewer served answers,
/// `AuditPolicy`): its increment is scaled by its weight in (0, 1], which keeps the ratio a supermartingale
/// (Jensen), so the false-alarm bound holds as stated.
public struct SequentialTest: Sendable, Hashable {
    public struct Configuration: Sendable, Hashable {
        /// p₀: the share of successes held to.
        public var target: Double
        /// p₀ − p₁: how far below the target counts as failing.
        public var margin: Double
        /// The mean number of observations between false alarms at the target, at least.
        public var falseAlarmEvery: Double

        public init(target: Double, margin: Double, falseAlarmEvery: Double) {
            (self.target, self.margin, self.falseAlarmEvery) = (target, margin, falseAlarmEvery)
        }

        /// The audits of a student held to 95% agreement.
        public static let audits = Configuration(target: 0.95, margin: 0.05, falseAlarmEvery: 10_000)

        /// Why the configuration cannot make a test, or nil.
        public var invalidReason: String? {
            if !(target > 0 && target < 1) { return "the target must be within 0…1, exclusive" }
            if !(margin > 0 && margin < target) { return "the margin must be positive and below the target" }
            if !(falseAlarmEvery > 1 && falseAlarmEvery.isFinite) { return "the false-alarm interval must exceed 1" }
            return nil
        }

        /// h: the statistic at which the test alarms.
        public var threshold: Double { log(falseAlarmEvery) }
        /// The increment of a success (negative)…
        public var successIncrement: Double { log((target - margin) / target) }
        /// …and of a failure (positive).
        public var failureIncrement: Double { log((1 - target + margin) / (1 - target)) }

        /// p*: the share of successes below which each observation moves the statistic up on average.
        public var breakEven: Double { failureIncrement / (failureIncrement - successIncrement) }

        /// The most observations it takes on average to alarm once the share of successes is `share` (unit
        /// weights); nil at or above the break-even share, where no alarm is expected.
        public func expectedDelay(share p: Double) -> Double? {
            let drift = p * successIncrement + (1 - p) * failureIncrement
            return drift > 0 ? (threshold + failureIncrement) / drift : nil
        }
    }

    public let configuration: Configuration
    /// The CUSUM statistic: ≥ 0; the test alarms once it reaches `configuration.threshold`.
    public private(set) var statistic = 0.0
    public private(set) var observations = 0
    public private(set) var failures = 0
    /// Whether the test has alarmed; final.
    public private(set) var alarmed = false

    public init(_ configuration: Configuration) {
        precondition(configuration.invalidReason == nil, configuration.invalidReason ?? "")
        self.configuration = configuration
    }

    /// A test that has already taken in observations (as a store kept it): alarmed if its statistic has reached
    /// the threshold.
    public init(_ configuration: Configuration, statistic: Double, observations: Int, failures: Int) {
        self.init(configuration)
        (self.statistic, self.observations, self.failures) = (max(0, statistic), observations, failures)
        alarmed = self.statistic >= configuration.threshold
    }

    /// Records one observation; returns whether the test has alarmed. Once it has, observations change nothing.
    @discardableResult
    public mutating func record(_ success: Bool, weight: Double = 1) -> Bool {
        precondition(weight > 0 && weight <= 1, "an observation's weight must be within (0, 1]")
        guard !alarmed else { return true }
        observations += 1
        if !success { failures += 1 }
        let increment = success ? configuration.successIncrement : configuration.failureIncrement
        statistic = max(0, statistic + weight * increment)
        alarmed = statistic >= configuration.threshold
        return alarmed
    }

    /// The statistic as a share of the way to the alarm, 0…1: for status, and to suspect a shift early.
    public var progress: Double { min(1, statistic / configuration.threshold) }
}
