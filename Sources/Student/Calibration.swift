import Foundation

/// Temperature scaling, calibration error and the choice of τ, on held-out teacher traffic.
public enum Calibration {
    /// The temperature that minimizes the mean negative log-likelihood of `labels` under softmax(logits / T)
    /// (Guo et al. 2017). The likelihood is concave in β = 1/T, so its derivative, mean(E_p[z] − z_label), is
    /// increasing in β and bisection on log β finds the optimum; T stays within 0.05…20.
    /// `weights`: how many requests of the traffic each example stands for (nil: one each).
    public static func fitTemperature(logits: [[Float]], labels: [Int], weights: [Double]? = nil) -> Float {
        precondition(logits.count == labels.count && !labels.isEmpty && (weights?.count ?? labels.count) == labels.count)
        func slope(_ beta: Double) -> Double {
            var total = 0.0
            for (index, (z, label)) in zip(logits, labels).enumerated() {
                let largest = Double(z.max()!)
                var weight = 0.0, weighted = 0.0
                for value in z {
                    let e = exp(beta * (Double(value) - largest))
                    weight += e
                    weighted += e * Double(value)
                }
                total += (weights?[index] ?? 1) * (weighted / weight - Double(z[label]))
            }
            return total
        }
        var low = log(0.05), high = log(20.0)
        for _ in 0..<60 {
            let middle = (low + high) / 2
            if slope(exp(middle)) < 0 { low = middle } else { high = middle }
        }
        return Float(1 / exp((low + high) / 2))
    }

    /// Expected calibration error over equal-width confidence bins: Σ (bin share) · |agreement − mean confidence|.
    public static func expectedCalibrationError(confidences: [Float], correct: [Bool], binCount: Int = 15) -> Double {
        precondition(confidences.count == correct.count && binCount >= 1)
        guard !confidences.isEmpty else { return 0 }
        var count = [Int](repeating: 0, count: binCount)
        var confidence = [Double](repeating: 0, count: binCount)
        var agreeing = [Double](repeating: 0, count: binCount)
        for (value, isCorrect) in zip(confidences, correct) {
            let bin = min(Int(Double(value) * Double(binCount)), binCount - 1)
            count[bin] += 1
            confidence[bin] += Double(value)
            agreeing[bin] += isCorrect ? 1 : 0
        }
        var error = 0.0
        for bin in 0..<binCount where count[bin] > 0 {
            error += abs(agreeing[bin] - confidence[bin]) / Double(confidences.count)
        }
        return error
    }

    /// τ: the smallest confidence threshold whose accepted examples (confidence ≥ τ) number at least
    /// `minimumAccepted` and agree at least `targetAgreement` of the time, by the lower bound of the Wilson score
    /// interval with `z` (0: by the observed share). Nil when no threshold qualifies: the student never answers.
    /// With `weights` (how many requests of the traffic each example stands for), agreement is the weighted share
    /// and the count the effective one (`WeightedShare`).
    ///
    /// The smallest such threshold is a selection among many thresholds on one sample, so the observed agreement
    /// at it is biased upwards; the minimum and the lower bound keep that bias from taking τ below what fresh
    /// traffic supports (docs/benchmarks.md measures both).
    public static func acceptanceThreshold(
        confidences: [Float], correct: [Bool], weights: [Double]? = nil, targetAgreement: Double, minimumAccepted: Int,
        z: Double
    ) -> Float? {
        precondition(confidences.count == correct.count && (weights?.count ?? correct.count) == correct.count)
        let order = confidences.indices.sorted { confidences[$0] > confidences[$1] }
        var threshold: Float?
        var accepted = WeightedShare()
        var next = 0
        while next < order.count {
            // All examples of equal confidence are accepted together.
            let value = confidences[order[next]]
            while next < order.count && confidences[order[next]] == value {
                accepted.add(correct[order[next]], weight: weights?[order[next]] ?? 1)
                next += 1
            }
            if accepted.effectiveCount >= Double(minimumAccepted) && accepted.lowerBound(z: z) >= targetAgreement {
                threshold = value
            }
        }
        return threshold
    }

    /// The least value with at least `level` of the total weight at or below it (`values` not empty).
    public static func weightedQuantile(_ values: [Float], weights: [Double], level: Double) -> Float {
        precondition(!values.isEmpty && values.count == weights.count && (0...1).contains(level))
        let order = values.indices.sorted { values[$0] < values[$1] }
        let total = weights.reduce(0, +)
        var cumulative = 0.0
        for index in order {
            cumulative += weights[index]
            if cumulative >= level * total { return values[index] }
        }
        return values[order[order.count - 1]]
    }

    /// The lower end of the Wilson score interval of a proportion (Wilson 1927); the observed share when z is 0.
    public static func wilsonLowerBound(successes: Int, trials: Int, z: Double) -> Double {
        wilsonLowerBound(share: trials > 0 ? Double(successes) / Double(trials) : 0, trials: Double(trials), z: z)
    }

    /// The same, of an observed `share` of `trials` (an effective count may be fractional).
    public static func wilsonLowerBound(share p: Double, trials n: Double, z: Double) -> Double {
        guard n > 0 else { return 0 }
        let z2 = z * z
        return (p + z2 / (2 * n) - z * (p * (1 - p) / n + z2 / (4 * n * n)).squareRoot()) / (1 + z2 / n)
    }

    /// The predicted class — the best output that is a class, never the rest — and its probability under
    /// softmax(logits / temperature) over all outputs, rest included.
    static func confidence(logits: [Float], temperature: Float, classCount: Int) -> (classIndex: Int, probability: Float) {
        var best = 0
        for c in 1..<classCount where logits[c] > logits[best] { best = c }
        let largest = max(logits[best], logits[classCount])
        var total: Float = 0
        for value in logits { total += exp((value - largest) / temperature) }
        return (best, exp((logits[best] - largest) / temperature) / total)
    }
}

/// A proportion over observations that each stand for `weight` requests of the traffic: its share is the weighted
/// one, and its noise is judged by its effective count (Kish 1965), (Σw)² / Σw², which a few heavy observations
/// shrink. With unit weights both are the plain share and count.
public struct WeightedShare: Sendable, Hashable {
    public private(set) var weight = 0.0
    public private(set) var successWeight = 0.0
    public private(set) var squaredWeight = 0.0

    public init() {}

    public mutating func add(_ success: Bool, weight: Double = 1) {
        self.weight += weight
        successWeight += success ? weight : 0
        squaredWeight += weight * weight
    }

    /// 0 when empty.
    public var share: Double { weight > 0 ? successWeight / weight : 0 }
    public var effectiveCount: Double { squaredWeight > 0 ? weight * weight / squaredWeight : 0 }

    /// The Wilson lower bound of the share, at its effective count.
    public func lowerBound(z: Double) -> Double {
        Calibration.wilsonLowerBound(share: share, trials: effectiveCount, z: z)
    }

    /// The Wilson upper bound of the share (one minus the lower bound of its complement), at its effective count.
    public func upperBound(z: Double) -> Double {
        1 - Calibration.wilsonLowerBound(share: 1 - share, trials: effectiveCount, z: z)
    }
}
