import Foundation

/// The standard normal distribution, as the probit model needs it.
enum Probit {
    /// Φ(z): P(N(0, 1) ≤ z).
    static func cdf(_ z: Double) -> Double { 0.5 * erfc(-z / 2.0.squareRoot()) }

    /// φ(z)/Φ(z), the inverse Mills ratio; its asymptote far in the lower tail, where Φ underflows.
    static func millsRatio(_ z: Double) -> Double {
        if z < -8 { return -z / (1 - 1 / (z * z) + 3 / (z * z * z * z)) }
        let density = exp(-z * z / 2) / (2 * Double.pi).squareRoot()
        return density / cdf(z)
    }

    /// Φ⁻¹(p) for 0 < p < 1, by bisection (called once per configuration, not per lookup).
    static func quantile(_ p: Double) -> Double {
        precondition(p > 0 && p < 1, "a probability strictly between 0 and 1")
        var (low, high) = (-40.0, 40.0)
        for _ in 0..<200 {
            let middle = (low + high) / 2
            if cdf(middle) < p { low = middle } else { high = middle }
        }
        return (low + high) / 2
    }
}
