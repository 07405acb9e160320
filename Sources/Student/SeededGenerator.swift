import Foundation

/// SplitMix64 (Steele, Lea and Flood 2014): a tiny generator whose stream depends only on its seed, so that
/// initialization, shuffles and dropout masks — and with them the trained weights — are reproducible.
struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [0, 1) with 53 random bits.
    mutating func nextUnit() -> Double { Double(next() >> 11) * 0x1p-53 }

    /// Standard normal, by Box–Muller (one of the pair; simplicity over speed, it only initializes weights).
    mutating func nextGaussian() -> Double {
        let u = 1 - nextUnit()
        return (-2 * log(u)).squareRoot() * cos(2 * Double.pi * nextUnit())
    }
}
