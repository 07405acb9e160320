/// Where every new scope's model starts: the weights fitted on every lookup of the tuning streams
/// (`distill-bench cache-precision --split tuning --fit-prior`, seed 1), with deviations wide
/// enough for a scope's own lessons to move them within a few dozen teacher answers.
enum GlobalPrior {
    /// Intercept, distance, then `Signals.ordered`.
    static let mean: [Double] = [-2.24, 0.229, 2.77, 4.88, 2.29, 3.32, 0, 1.52]
    static let standardDeviations: [Double] = [0.5, 0.15, 1.0, 1.0, 1.0, 1.0, 1.0, 0.5]

    static func model(for signals: Signals) -> WrongHitModel {
        let kept = [0, 1] + Signals.ordered.indices.filter { signals.contains(Signals.ordered[$0]) }.map { $0 + 2 }
        return WrongHitModel(mean: kept.map { mean[$0] }, standardDeviations: kept.map { standardDeviations[$0] })
    }
}
