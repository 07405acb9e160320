/// How many requests of the traffic each teacher answer stands for when a candidate is calibrated and judged.
///
/// Once a student serves, the teacher answers only what it is unsure of (and an audit share of the rest), so the
/// teacher log holds far more hard requests than the traffic does. Judged on it unweighted, a candidate's τ came out
/// stricter than the traffic needed, and later candidates found none at all (docs/benchmarks.md, Replay). So the
/// answers are post-stratified by the active student's confidence: those it is confident on stand for its share of
/// the traffic (`activeCoverage`, `Students.Serving.coverage`), the others for the rest.
///
/// Each stratum is a fair sample of its part of the traffic or a harder one: answers logged under an earlier student
/// are what that one was unsure of, and answers the active student trained on join its confident stratum more often
/// than fresh ones would, which leaves the harder ones to the other. With the right share, weighting back can only
/// err towards a stricter τ than an unbiased sample would give. The share is counted on the live traffic once the
/// active student has decided a few hundred requests. Until then it is the estimate made when it was promoted, from
/// its own weighted holdout; used throughout, those estimates chained from version to version and drifted from the
/// live shares (36% → 20% against 21% → 41% on the GPT-4 replay), and the next candidate's τ with them.
enum HoldoutWeights {
    /// `activeAccepts`: per answer, whether the active student is confident on it. Nil, unweighted, when a stratum
    /// is empty or the coverage leaves no traffic to one.
    static func poststratified(activeAccepts: [Bool], activeCoverage: Double) -> [Double]? {
        let confident = activeAccepts.count { $0 }, unsure = activeAccepts.count - confident
        guard confident > 0, unsure > 0, activeCoverage > 0, activeCoverage < 1 else { return nil }
        // Normalized to a mean of 1.
        let n = Double(activeAccepts.count)
        let confidentWeight = activeCoverage * n / Double(confident)
        let unsureWeight = (1 - activeCoverage) * n / Double(unsure)
        return activeAccepts.map { $0 ? confidentWeight : unsureWeight }
    }
}
