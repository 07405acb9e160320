/// Where every new scope's model starts. Placeholder values until fitted on the tuning split.
enum GlobalPrior {
    /// Intercept, distance, then `Signals.ordered`.
    static let mean: [Double] = [-2.6, 0.6, 2.0, 2.0, 1.0, 2.0, 1.0, 1.0]
    static let standardDeviations: [Double] = [1.0, 0.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5]

    static func model(for signals: Signals) -> WrongHitModel {
        let kept = [0, 1] + Signals.ordered.indices.filter { signals.contains(Signals.ordered[$0]) }.map { $0 + 2 }
        return WrongHitModel(mean: kept.map { mean[$0] }, standardDeviations: kept.map { standardDeviations[$0] })
    }
}
