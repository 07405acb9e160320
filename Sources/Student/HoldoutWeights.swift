/// How many requests of the traffic each teacher answer stands for when a candidate is calibrated and judged.
///
/// Once a student serves, the teacher answers only what it is unsure of (and an audit share of the rest), so the
/// teacher log holds far more hard requests than the traffic does. Judged on it unweighted, a candidate's τ came out
/// stricter than the traffic needed, and later candidates found none at all (docs/benchmarks.md, Replay). So the
/// answers are post-stratified by the active student's confidence: those it is confident on stand for its share of
/// the traffic (`activeCoverage`, `Students.Serving.coverage`), the others for the rest.
///
/// Each stratum is a fair sample of its part of the traffic or a harder one: answers logged under an earlier student
/// are what that one was unsure of. The answers the active student trained on are sorted apart (`confidentStratum`):
/// it is surer of them than fresh traffic would make it. With the right share, weighting back can only err towards a
/// stricter τ than an unbiased sample would give. The share is counted on the live traffic once the active student
/// has decided a few hundred requests. Until then it is the estimate made when it was promoted, from its own
/// weighted holdout; used throughout, those estimates chained from version to version and drifted from the live
/// shares (36% → 20% against 21% → 41% on the GPT-4 replay), and the next candidate's τ with them.
public enum HoldoutWeights {
    /// Per answer, whether it falls in the active student's confident stratum. The active student is far surer of
    /// the answers it trained on (`trainedOn`) than fresh traffic would make it: on the GPT-4 replay it was confident
    /// on 48–60% of them and on 19–35% of its own holdout from the same stretch of the log. Counted as they are,
    /// they crowded the confident stratum with answers it would be unsure of, left the unsure one its hardest, and
    /// τ came out stricter than the traffic needed (docs/benchmarks.md, Replay). Its holdout (`heldOut`) is a split
    /// of the same answers by prompt hash that it never trained on, so the share it is confident on there is the
    /// share it would be confident on among those it trained on, had it not: only that top share of them, ranked by
    /// its confidence, counts as confident. Every other answer is judged as it is. Unchanged when none of its
    /// holdout is in the log.
    public static func confidentStratum(confidence: [Float], confident: [Bool], trainedOn: [Bool], heldOut: [Bool]) -> [Bool] {
        let held = heldOut.indices.filter { heldOut[$0] }
        guard !held.isEmpty else { return confident }
        let share = Double(held.count { confident[$0] }) / Double(held.count)
        let trained = trainedOn.indices.filter { trainedOn[$0] }.sorted { confidence[$0] > confidence[$1] }
        let kept = Int((share * Double(trained.count)).rounded())
        var stratum = confident
        for (rank, index) in trained.enumerated() { stratum[index] = confident[index] && rank < kept }
        return stratum
    }

    /// `activeAccepts`: per answer, whether the active student is confident on it. Nil, unweighted, when a stratum
    /// is empty or the coverage leaves no traffic to one.
    public static func poststratified(activeAccepts: [Bool], activeCoverage: Double) -> [Double]? {
        let confident = activeAccepts.count { $0 }, unsure = activeAccepts.count - confident
        guard confident > 0, unsure > 0, activeCoverage > 0, activeCoverage < 1 else { return nil }
        // Normalized to a mean of 1.
        let n = Double(activeAccepts.count)
        let confidentWeight = activeCoverage * n / Double(confident)
        let unsureWeight = (1 - activeCoverage) * n / Double(unsure)
        return activeAccepts.map { $0 ? confidentWeight : unsureWeight }
    }
}
