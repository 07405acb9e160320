import Foundation
import SeededRandom

extension SplitMix64 {
    /// Standard normal, by Box–Muller (one of the pair; simplicity over speed, it only initializes weights).
    mutating func nextGaussian() -> Double {
        let u = 1 - nextUnit()
        return (-2 * log(u)).squareRoot() * cos(2 * Double.pi * nextUnit())
    }
}
