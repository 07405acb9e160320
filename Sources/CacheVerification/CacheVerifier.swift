import Foundation

/// Decides whether a candidate hit may be served so that the share of wrong answers among a
/// scope's hits stays under the operator's bound δ, and learns from the teacher's answers.
///
/// On a lookup (`decide`): a candidate is served when the mean of the upper confidence bounds of
/// P(wrong) over the scope's recent hits, its own included, stays within δ (`servable`); one whose
/// lower bound is within δ is explored (the cache cannot tell yet), anything else misses. Every
/// lookup the teacher answers is a lesson: `learn` compares its answer with the candidate's cached one and updates the scope's model and the entry's belief, explorations and
/// misses alike, at no extra teacher call. The only teacher calls spent on learning alone are
/// audits: a bounded share of servable candidates is explored anyway, so that the estimate is
/// checked where the cache serves.
///
/// Pure: no I/O, no clock, no randomness of its own (the caller passes a uniform draw).
public struct CacheVerifier: Sendable, Equatable {
    public struct Configuration: Sendable, Hashable, Codable {
        /// δ: the largest share of wrong answers among hits the operator accepts.
        public var maxWrongRate: Double
        /// One-sided level of the confidence bounds.
        public var confidence: Double
        /// The share of servable lookups explored anyway (audits): never more than this share of all lookups.
        public var auditShare: Double
        /// The share of lookups that may be sent to the teacher to learn (explorations and audits
        /// together); beyond it an uncertain candidate misses. 1: no bound (every lookup not served
        /// reaches the teacher anyway, as in the benchmark's streams).
        public var explorationShare: Double
        /// Candidates less similar than this miss without a look, and teach nothing.
        public var minimumSimilarity: Float
        /// The evidence weighed besides the similarity.
        public var signals: Signals
        /// How far an entry's offset may stray from its scope's model, as a standard deviation of w·x.
        public var entryDeviation: Double
        /// About how many of the scope's latest hits the mean upper bound is kept within δ over (`RecentHits`).
        public var window: Double
        /// The largest upper bound one hit may have, as a multiple of δ, however much room the
        /// scope's recent hits leave.
        public var maxHitBoundRatio: Double

        public init(
            maxWrongRate: Double, confidence: Double = 0.95, auditShare: Double = 0.02, explorationShare: Double = 1,
            minimumSimilarity: Float = 0.7, signals: Signals = .standard, entryDeviation: Double = 0.5,
            window: Double = 100, maxHitBoundRatio: Double = 2
        ) {
            self.maxWrongRate = maxWrongRate
            self.confidence = confidence
            self.auditShare = auditShare
            self.explorationShare = explorationShare
            self.minimumSimilarity = minimumSimilarity
            self.signals = signals
            self.entryDeviation = entryDeviation
            self.window = window
            self.maxHitBoundRatio = maxHitBoundRatio
        }
    }

    public enum Decision: String, Sendable, Codable {
        /// Serve the cached answer.
        case serve
        /// Ask the teacher: the candidate may be right, but the cache cannot show it yet (or this
        /// is an audit). `learn` from the answer.
        case explore
        /// Ask the teacher: the candidate is likely wrong, or there is none. `learn` from the answer
        /// when there was a candidate (`Verdict.teaches`).
        case miss
    }

    /// The estimated probability that serving the candidate would be wrong, with its confidence bounds.
    public struct Estimate: Sendable, Equatable {
        public var probability: Double
        public var lowerBound: Double
        public var upperBound: Double
    }

    public struct Verdict: Sendable, Equatable {
        public var decision: Decision
        /// nil when the candidate was below `minimumSimilarity` (or there was none).
        public var estimate: Estimate?
        /// Whether an exploration checks a candidate that could have been served.
        public var isAudit: Bool
        /// The features `learn` needs back.
        public var features: [Double]

        /// Whether the teacher's answer to this lookup is worth comparing with the candidate's.
        public var teaches: Bool { decision != .serve && !features.isEmpty }
    }

    public let configuration: Configuration
    private let bound: Double

    public init(_ configuration: Configuration) {
        precondition(configuration.maxWrongRate > 0 && configuration.maxWrongRate < 1, "δ is a probability")
        self.configuration = configuration
        bound = Probit.quantile(configuration.confidence)
    }

    /// The model a new scope starts from.
    public func newScope() -> ScopeBelief {
        ScopeBelief(model: GlobalPrior.model(for: configuration.signals))
    }

    /// The belief a new entry starts from: its scope's model, no offset yet.
    public func newEntry() -> EntryBelief { EntryBelief(offsetVariance: configuration.entryDeviation * configuration.entryDeviation) }

    /// P(wrong) for a candidate with these features. The bounds are over what the scope's model
    /// does not yet know; the entry's own uncertainty is averaged over, like any other noise.
    public func estimate(_ features: [Double], scope: ScopeBelief, entry: EntryBelief) -> Estimate {
        let (mean, variance) = scope.model.latent(features)
        let spread = bound * variance.squareRoot()
        let entryScale = (1 + entry.offsetVariance).squareRoot()
        return Estimate(
            probability: Probit.cdf((mean + entry.offsetMean) / (1 + variance + entry.offsetVariance).squareRoot()),
            lowerBound: Probit.cdf((mean - spread + entry.offsetMean) / entryScale),
            upperBound: Probit.cdf((mean + spread + entry.offsetMean) / entryScale))
    }

    /// What to do with a lookup whose nearest entry is `candidate` (nil: the scope has none); counts
    /// the lookup in `scope`. `draw`: uniform in [0, 1), for audits.
    public func decide(_ candidate: Candidate?, scope: inout ScopeBelief, entry: EntryBelief, draw: Double) -> Verdict {
        scope.lookups += 1
        guard let candidate, candidate.similarity >= configuration.minimumSimilarity else {
            return Verdict(decision: .miss, estimate: nil, isAudit: false, features: [])
        }
        let features = configuration.signals.features(of: candidate)
        let estimate = estimate(features, scope: scope, entry: entry)
        let decision: Decision
        var isAudit = false
        let lookups = Double(scope.lookups)
        let withinBudget = Double(scope.explorations + scope.audits) < configuration.explorationShare * lookups
        if servable(estimate.upperBound, scope: scope) {
            isAudit = withinBudget && draw < configuration.auditShare && Double(scope.audits) < configuration.auditShare * lookups
            decision = isAudit ? .explore : .serve
        } else {
            decision = estimate.lowerBound <= configuration.maxWrongRate && withinBudget ? .explore : .miss
        }
        switch decision {
        case .serve:
            scope.hits += 1
            scope.expectedWrongHits += estimate.probability
            scope.boundWrongHits += estimate.upperBound
            scope.recent = (scope.recent ?? RecentHits()).adding(estimate.upperBound, window: configuration.window)
        case .explore:
            if isAudit { scope.audits += 1 } else { scope.explorations += 1 }
        case .miss:
            break
        }
        return Verdict(decision: decision, estimate: estimate, isAudit: isAudit, features: features)
    }

    /// Whether a hit with this upper bound keeps the mean upper bound of the scope's recent hits
    /// within δ. A hit within δ on its own always does; a riskier one (up to `maxHitBoundRatio`·δ)
    /// is served only on the room that surer hits left. So the wrong-hit rate is bounded over the
    /// scope's recent hits rather than hit by hit, which left most paraphrases unserved
    /// (docs/benchmarks.md, "Cache precision").
    func servable(_ upperBound: Double, scope: ScopeBelief) -> Bool {
        let δ = configuration.maxWrongRate
        if upperBound <= δ { return true }
        guard upperBound <= configuration.maxHitBoundRatio * δ else { return false }
        let recent = (scope.recent ?? RecentHits()).adding(upperBound, window: configuration.window)
        return recent.boundSum <= δ * recent.hits
    }

    /// Takes in what the teacher's answer to a lookup showed: whether the candidate's cached answer
    /// differed from it (`AnswerEquivalence`). Updates the scope's model and returns the entry's new belief.
    public func learn(_ verdict: Verdict, wrong: Bool, scope: inout ScopeBelief, entry: EntryBelief) -> EntryBelief {
        precondition(verdict.teaches, "a served lookup has no teacher answer, and one without a candidate nothing to compare")
        scope.lessons += 1
        if wrong { scope.wrongLessons += 1 }
        if wrong && verdict.isAudit { scope.auditedWrong += 1 }
        return scope.model.observe(verdict.features, wrong: wrong, entry: entry)
    }

    /// The similarity of the nearest neighbour whose answer differs from the nearest one's:
    /// `neighbours` by decreasing similarity, the nearest first.
    public static func runnerUp(
        _ neighbours: [(similarity: Float, answer: String)], equivalence: AnswerEquivalence = AnswerEquivalence()
    ) -> Float? {
        guard let nearest = neighbours.first else { return nil }
        return neighbours.dropFirst().first { !equivalence.areEquivalent($0.answer, nearest.answer) }?.similarity
    }
}

/// What a scope has learned, and what it has done: persist all of it (the model's numbers and the
/// counters), per scope.
public struct ScopeBelief: Sendable, Equatable, Codable {
    public var model: WrongHitModel
    public var lookups = 0
    public var hits = 0
    /// Lookups sent to the teacher because the cache could not yet tell (audits apart).
    public var explorations = 0
    /// Servable lookups sent to the teacher to check the estimate.
    public var audits = 0
    public var auditedWrong = 0
    /// Teacher answers compared with a candidate's, and how many differed.
    public var lessons = 0
    public var wrongLessons = 0
    /// Σ P(wrong) over the hits served: divided by `hits`, the wrong-hit rate the model expects.
    public var expectedWrongHits = 0.0
    /// Σ of the upper bounds over the hits served: divided by `hits`, a bound on it.
    public var boundWrongHits = 0.0
    /// The recent hits and their upper bounds, older ones forgotten: the serving rule's room
    /// (optional so that a belief stored before it existed still reads).
    public var recent: RecentHits?

    public init(model: WrongHitModel) { self.model = model }

    /// The wrong-hit rate the model expects of the hits served so far, and its bound.
    public var wrongHitRate: (estimate: Double, upperBound: Double)? {
        hits == 0 ? nil : (expectedWrongHits / Double(hits), boundWrongHits / Double(hits))
    }
}

/// A scope's hits and the sum of their upper bounds, each weighed by how recent it is: every new hit
/// multiplies the weights of those before by 1 − 1/window, so the sums cover about the last `window`
/// hits and room earned long ago cannot be spent in a burst.
public struct RecentHits: Sendable, Equatable, Codable {
    public var hits = 0.0
    public var boundSum = 0.0

    public init() {}

    func adding(_ upperBound: Double, window: Double) -> RecentHits {
        let kept = 1 - 1 / window
        var recent = self
        recent.hits = hits * kept + 1
        recent.boundSum = boundSum * kept + upperBound
        return recent
    }
}
