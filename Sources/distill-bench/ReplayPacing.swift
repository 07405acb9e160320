import DistillAPI
import Student
import Foundation

/// Holds the stream while the daemon's distiller retrains, so that each student version takes
/// over at a position of the stream rather than at a moment of the wall clock.
///
/// The daemon trains a scope as soon as its teacher log has `distill.min_rows` answers (the first
/// time) or `distill.min_new_rows` new ones (or a tenth of those it last trained on; half as many
/// while no student serves it). Free running, how many requests pass between that threshold and the
/// new version serving depends on the machine's speed and load, and so does which rows the next
/// version learns from: two runs of one seed then disagree on the source of a quarter of the
/// requests (docs/benchmarks.md). So the replay sends in rounds, each no larger than the
/// teacher answers still missing to the next training (a request brings at most one), so that the
/// answer which makes a training due is the last of its round; then it waits until the daemon has
/// trained and decided. The daemon's thresholds are its own: the replay only waits for them.
///
/// The daemon also trains sooner when a scope's traffic has shifted away from what its student learned
/// (`ShiftRule`), which the replay cannot foresee: a run it finds started between two rounds is waited
/// for as well. Such a run starts within a round, so the rows it learns from may differ by the rest of
/// that round from one run of the stream to the next.
struct ReplayPacing {
    private let status: @Sendable () async -> DistillStatus?
    /// Teacher answers at which the daemon's next training is due.
    private var nextTraining: Int
    /// The largest id of the distiller's runs seen so far.
    private var lastRun: Int
    private let minRows: Int, minNewRows: Int
    /// How long the stream was held in all.
    private(set) var held = Duration.zero
    /// How long a due training may take to show in the daemon's status before the replay goes on
    /// without it (commits wake the distiller, so it shows within milliseconds).
    static let startTimeout = Duration.seconds(5)

    /// nil when the daemon does not distill (students or the distiller disabled).
    init?(status: @escaping @Sendable () async -> DistillStatus?) async {
        guard let initial = await status(), initial.enabled else { return nil }
        self.status = status
        (minRows, minNewRows) = (initial.minRows, initial.minNewRows)
        nextTraining = RetrainingSchedule.untrainedAnswersDue(
            trained: false, trainedOn: nil, serving: false, failedAt: nil, minRows: minRows, minNewRows: minNewRows)
        lastRun = initial.runs.map(\.id).max() ?? 0
    }

    /// The size of the next round: at most `concurrency`, and at most the teacher answers still
    /// missing to the next training.
    func roundSize(teacherAnswers: Int, concurrency: Int) -> Int {
        max(1, min(concurrency, nextTraining - teacherAnswers))
    }

    /// Between two rounds: when the teacher answers so far make a training due, waits until the
    /// runs the daemon starts have finished; if it starts none within `startTimeout`, it was not due.
    mutating func betweenRounds(teacherAnswers: Int) async {
        if teacherAnswers < nextTraining {
            guard let runs = await status()?.runs, runs.contains(where: { $0.id > lastRun }) else { return }
        }
        let started = ContinuousClock.now
        while true {
            try? await Task.sleep(for: .milliseconds(20))
            guard let status = await status() else { break }
            let new = status.runs.filter { $0.id > lastRun }
            if !new.isEmpty, new.allSatisfy(\.isFinished) {
                lastRun = new.map(\.id).max()!
                break
            }
            if new.isEmpty, ContinuousClock.now - started > Self.startTimeout { break }
        }
        // The daemon's rule; a scope is served once a version has been promoted.
        let runs = await status()?.runs
        let serving = runs?.contains { $0.outcome == .promoted } ?? true
        let trainedOn = runs?.filter { $0.version != nil }.max { $0.id < $1.id }?.rows
        nextTraining = teacherAnswers
            + RetrainingSchedule.untrainedAnswersDue(
                trained: true, trainedOn: trainedOn, serving: serving, failedAt: nil, minRows: minRows, minNewRows: minNewRows)
        held += ContinuousClock.now - started
    }
}
