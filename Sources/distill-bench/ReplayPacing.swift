import DistillAPI
import Foundation
import Synchronization

/// Holds the stream while the daemon's distiller retrains, so that each student version takes
/// over at a position of the stream rather than at a moment of the wall clock.
///
/// The daemon trains a scope when its scheduled check (every `distill.interval_seconds`) finds
/// `distill.min_rows` teacher answers (the first time) or `distill.min_new_rows` new ones. Free
/// running, how many requests pass between that threshold and the new version serving depends on
/// the machine's speed and load, and so does which rows the next version learns from: two runs of
/// one seed then disagree on the source of a quarter of the requests (docs/benchmarks.md). So when
/// the replay has seen that many teacher answers, it stops sending, lets the requests in flight
/// finish, and waits until the daemon has checked, trained and decided on its own schedule; then
/// it goes on. The daemon's schedule and thresholds are its own: the replay only waits for them.
final class ReplayPacing: Sendable {
    private let status: @Sendable () async -> DistillStatus?
    private let state: Mutex<State>

    private struct State {
        var teacherAnswers = 0
        /// Teacher answers at which the daemon's next training is due.
        var nextTraining: Int
        var inFlight = 0
        var holding = false
        var waiters: [CheckedContinuation<Void, Never>] = []
        /// The distiller's runs seen so far (their largest id).
        var lastRun: Int
        var intervalSeconds: Double
        var minNewRows: Int
        var held = Duration.zero
    }

    /// nil when the daemon does not distill (students or the distiller disabled).
    init?(status: @escaping @Sendable () async -> DistillStatus?) async {
        guard let initial = await status(), initial.enabled else { return nil }
        self.status = status
        state = Mutex(
            State(
                nextTraining: initial.minRows, lastRun: initial.runs.map(\.id).max() ?? 0,
                intervalSeconds: initial.intervalSeconds, minNewRows: initial.minNewRows))
    }

    /// How long the stream was held in all.
    var held: Duration { state.withLock { $0.held } }

    /// Waits while the stream is held, then counts a request in flight.
    func begin() async {
        while true {
            let proceed = state.withLock { state in
                if !state.holding { state.inFlight += 1 }
                return !state.holding
            }
            if proceed { return }
            await withCheckedContinuation { continuation in
                let now = state.withLock { state in
                    guard state.holding else { return true }
                    state.waiters.append(continuation)
                    return false
                }
                if now { continuation.resume() }
            }
        }
    }

    /// Counts a finished request; the one that brings the teacher answers to the daemon's threshold
    /// holds the stream until the daemon has retrained.
    func end(_ source: ReplaySource?) async {
        let hold = state.withLock { state in
            state.inFlight -= 1
            if source == .teacher { state.teacherAnswers += 1 }
            guard !state.holding, state.teacherAnswers >= state.nextTraining else { return false }
            state.holding = true
            return true
        }
        guard hold else { return }
        let started = ContinuousClock.now
        while state.withLock({ $0.inFlight }) > 0 { try? await Task.sleep(for: .milliseconds(5)) }
        await waitForTheDistiller()
        let waiters = state.withLock { state in
            state.nextTraining = state.teacherAnswers + state.minNewRows
            state.holding = false
            state.held += ContinuousClock.now - started
            defer { state.waiters = [] }
            return state.waiters
        }
        waiters.forEach { $0.resume() }
    }

    /// Until the runs the daemon started since the last wait have finished; if it starts none
    /// within its interval (and a margin), it was not due.
    private func waitForTheDistiller() async {
        let (lastRun, interval) = state.withLock { ($0.lastRun, $0.intervalSeconds) }
        let deadline = ContinuousClock.now + .seconds(interval + 2)
        while true {
            try? await Task.sleep(for: .milliseconds(100))
            guard let status = await status() else { return }
            let new = status.runs.filter { $0.id > lastRun }
            if !new.isEmpty, new.allSatisfy(\.isFinished) {
                state.withLock { $0.lastRun = new.map(\.id).max()! }
                return
            }
            if new.isEmpty, ContinuousClock.now > deadline { return }
        }
    }
}
