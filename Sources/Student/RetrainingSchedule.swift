/// When a scope's teacher log has grown enough for the distiller to train it again. The daemon's
/// distiller and the replay benchmark's pacing both wait by this one rule.
public enum RetrainingSchedule {
    /// The untrained teacher answers that make a scope due: `distill.min_rows` before its first training; after
    /// one, a step of `min_new_rows` or a tenth of the answers the last run trained on (`trainedOn`, when known),
    /// whichever is more, or half the step while no student serves it (every teacher answer is then one a student
    /// might have saved); after a run that failed, a step more than it failed at. The tenth keeps a large log from
    /// retraining every few hundred answers: a training's cost grows with the log, what those answers add shrinks.
    public static func untrainedAnswersDue(
        trained: Bool, trainedOn: Int?, serving: Bool, failedAt: Int?, minRows: Int, minNewRows: Int
    ) -> Int {
        let step = max(minNewRows, (trainedOn ?? 0) / 10)
        if let failedAt { return failedAt + step }
        guard trained else { return minRows }
        return serving ? step : max(1, step / 2)
    }
}
