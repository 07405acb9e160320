import Foundation

/// A candidate hit: a query and the nearest cached entry, as the verifier sees them.
public struct Candidate: Sendable, Equatable {
    /// Cosine similarity of the query to the nearest entry.
    public var similarity: Float
    /// Similarity of the nearest entry whose answer is not the nearest's (`CacheVerifier.runnerUp`);
    /// nil when none was found among the neighbours searched.
    public var runnerUpSimilarity: Float?
    public var mismatch: Mismatch

    public init(similarity: Float, runnerUpSimilarity: Float?, mismatch: Mismatch) {
        self.similarity = similarity
        self.runnerUpSimilarity = runnerUpSimilarity
        self.mismatch = mismatch
    }

    public init(similarity: Float, runnerUpSimilarity: Float?, query: TextSignature, cached: TextSignature) {
        self.init(similarity: similarity, runnerUpSimilarity: runnerUpSimilarity, mismatch: Mismatch(query, cached))
    }
}

/// Which evidence the model weighs besides the similarity. Its layout is part of what is stored:
/// a model learned with one set cannot be read with another.
public struct Signals: OptionSet, Sendable, Hashable, Codable {
    public let rawValue: Int
    public init(rawValue: Int) { self.rawValue = rawValue }

    public static let negation = Signals(rawValue: 1 << 0)
    public static let numbers = Signals(rawValue: 1 << 1)
    public static let names = Signals(rawValue: 1 << 2)
    public static let oppositeAction = Signals(rawValue: 1 << 3)
    public static let contentDistance = Signals(rawValue: 1 << 4)
    /// How close the nearest entry with another answer comes to the nearest one.
    public static let runnerUp = Signals(rawValue: 1 << 5)

    public static let all: Signals = [.negation, .numbers, .names, .oppositeAction, .contentDistance, .runnerUp]
    /// What the cache weighs by default: the content distance is left out (docs/benchmarks.md, "Cache precision").
    public static let standard: Signals = [.negation, .numbers, .names, .oppositeAction, .runnerUp]

    /// In feature order, after the intercept and the distance.
    public static let ordered: [Signals] = [.negation, .numbers, .names, .oppositeAction, .contentDistance, .runnerUp]

    /// Intercept, distance, then one feature per signal.
    public var dimension: Int { 2 + Self.ordered.filter(contains).count }

    /// The feature vector: 1, (1 − similarity)/0.05, then each signal in `ordered` order. A
    /// mismatch counts in proportion to how close the texts are (0 up to 0.85, 1 at 1): between loose
    /// paraphrases a differing negation is one difference among many, between near-identical texts
    /// it is the difference. The content distance is in [0, 1]; the runner-up's closeness is 1 when
    /// an entry with another answer is as close as the nearest, 0 from 0.05 behind.
    public func features(of candidate: Candidate) -> [Double] {
        let similarity = Double(candidate.similarity)
        let closeness = min(max((similarity - 0.85) / 0.15, 0), 1)
        var features = [1, (1 - similarity) / 0.05]
        let mismatch = candidate.mismatch
        for signal in Self.ordered where contains(signal) {
            switch signal {
            case .negation: features.append(mismatch.negation ? closeness : 0)
            case .numbers: features.append(mismatch.numbers ? closeness : 0)
            case .names: features.append(mismatch.names ? closeness : 0)
            case .oppositeAction: features.append(mismatch.oppositeAction ? closeness : 0)
            case .contentDistance: features.append(mismatch.contentDistance)
            default:
                let gap = candidate.runnerUpSimilarity.map { similarity - Double($0) } ?? .infinity
                features.append(1 - min(max(gap, 0), 0.05) / 0.05)
            }
        }
        return features
    }
}

/// A probit model of P(wrong | features) = Φ(w·x) with a Gaussian belief N(mean, covariance) over
/// w, learned one outcome at a time by assumed-density filtering (the exact update of a Gaussian
/// belief by one probit observation, projected back to a Gaussian: closed form, no iteration).
///
/// A scope holds one; an entry adds its own offset to w·x (`EntryBelief`). Persist `mean` and
/// `covariance` (`dimension + dimension·(dimension+1)/2` numbers).
public struct WrongHitModel: Sendable, Equatable, Codable {
    public var mean: [Double]
    /// The lower triangle, row by row: element (i, j), j ≤ i, at i·(i+1)/2 + j.
    public var covariance: [Double]

    public init(mean: [Double], covariance: [Double]) {
        precondition(covariance.count == mean.count * (mean.count + 1) / 2, "a packed lower triangle of the mean's dimension")
        self.mean = mean
        self.covariance = covariance
    }

    /// Independent weights with these means and standard deviations.
    public init(mean: [Double], standardDeviations: [Double]) {
        precondition(mean.count == standardDeviations.count, "one deviation per weight")
        var covariance = [Double](repeating: 0, count: mean.count * (mean.count + 1) / 2)
        for (i, deviation) in standardDeviations.enumerated() { covariance[i * (i + 1) / 2 + i] = deviation * deviation }
        self.init(mean: mean, covariance: covariance)
    }

    public var dimension: Int { mean.count }

    func covarianceElement(_ i: Int, _ j: Int) -> Double {
        i >= j ? covariance[i * (i + 1) / 2 + j] : covariance[j * (j + 1) / 2 + i]
    }

    /// Σx.
    func covarianceTimes(_ x: [Double]) -> [Double] {
        (0..<dimension).map { i in (0..<dimension).reduce(0) { $0 + covarianceElement(i, $1) * x[$1] } }
    }

    /// The belief about w·x: its mean and variance.
    public func latent(_ x: [Double]) -> (mean: Double, variance: Double) {
        let mean = zip(self.mean, x).reduce(0) { $0 + $1.0 * $1.1 }
        let variance = zip(covarianceTimes(x), x).reduce(0) { $0 + $1.0 * $1.1 }
        return (mean, max(variance, 0))
    }

    /// Takes in one outcome for features `x`, the entry's offset belief added to w·x; returns the
    /// entry's updated belief.
    public mutating func observe(_ x: [Double], wrong: Bool, entry: EntryBelief) -> EntryBelief {
        let (latentMean, latentVariance) = latent(x)
        let sign: Double = wrong ? 1 : -1
        let scale = (1 + latentVariance + entry.offsetVariance).squareRoot()
        let z = sign * (latentMean + entry.offsetMean) / scale
        let ratio = Probit.millsRatio(z)
        // Mean moves by sign·ratio/scale along Σx; variance shrinks by ratio·(ratio + z)/scale² along Σx·(Σx)ᵀ.
        let step = sign * ratio / scale
        let shrink = ratio * (ratio + z) / (scale * scale)
        let sx = covarianceTimes(x)
        for i in 0..<dimension {
            mean[i] += step * sx[i]
            for j in 0...i { covariance[i * (i + 1) / 2 + j] -= shrink * sx[i] * sx[j] }
            // Rounding must not make a variance vanish or go negative.
            covariance[i * (i + 1) / 2 + i] = max(covariance[i * (i + 1) / 2 + i], 1e-9)
        }
        var updated = entry
        updated.offsetMean += step * entry.offsetVariance
        updated.offsetVariance = max(entry.offsetVariance - shrink * entry.offsetVariance * entry.offsetVariance, 1e-9)
        updated.explorations += 1
        if wrong { updated.wrong += 1 }
        return updated
    }
}

/// What is known about one cached entry beyond its scope's model: an offset to w·x (entries in a
/// crowded neighbourhood are wrong more often at the same similarity), learned from the
/// explorations of lookups that found this entry nearest. Persist all four numbers.
public struct EntryBelief: Sendable, Equatable, Codable {
    public var offsetMean: Double
    public var offsetVariance: Double
    public var explorations: Int
    public var wrong: Int

    public init(offsetMean: Double = 0, offsetVariance: Double, explorations: Int = 0, wrong: Int = 0) {
        self.offsetMean = offsetMean
        self.offsetVariance = offsetVariance
        self.explorations = explorations
        self.wrong = wrong
    }
}
