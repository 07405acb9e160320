/// Sebastiano Vigna's SplitMix64 (Steele, Lea and Flood 2014): a tiny, fast, seedable generator
/// whose stream depends only on its seed, on every platform. Whatever distill draws at random
/// draws from it: index levels (its whole state is one `UInt64`, which a snapshot stores to
/// continue the same sequence), a student's initial weights, shuffles and dropout, the simulated
/// teacher's faults and latencies, the replay's stream, and the tests' data.
public struct SplitMix64: RandomNumberGenerator, Sendable, Hashable {
    public private(set) var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [0, 1) with 53 random bits.
    public mutating func nextUnit() -> Double { Double(next() >> 11) * 0x1p-53 }
}
