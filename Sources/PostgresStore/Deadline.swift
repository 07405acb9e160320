import Synchronization

/// `operation`'s result, or nil once `timeout` has passed without one, whichever comes first. The
/// caller never waits longer, even for an operation that ignores its cancellation (a query already
/// sent on a connection PostgreSQL no longer answers): a task group would wait for that child, for
/// as long as it takes. The operation is cancelled when the caller stops waiting for it.
func firstWithin<T: Sendable>(_ timeout: Duration, _ operation: @escaping @Sendable () async throws -> T) async throws -> T? {
    let outcome = FirstOutcome<T?>()
    let work = Task {
        do {
            outcome.finish(.success(try await operation()))
        } catch {
            outcome.finish(.failure(error))
        }
    }
    let deadline = Task {
        guard (try? await Task.sleep(for: timeout)) != nil else { return }
        outcome.finish(.success(nil))
    }
    defer {
        work.cancel()
        deadline.cancel()
    }
    return try await withTaskCancellationHandler {
        try await outcome.value()
    } onCancel: {
        work.cancel()
    }
}

/// The first of several outcomes, handed to the one caller waiting for it (before or after it came).
private final class FirstOutcome<T: Sendable>: Sendable {
    private enum State {
        case pending
        case waiting(CheckedContinuation<T, any Error>)
        case finished(Result<T, any Error>)
    }
    private let state = Mutex(State.pending)

    func finish(_ outcome: Result<T, any Error>) {
        let waiter = state.withLock { state -> CheckedContinuation<T, any Error>? in
            switch state {
            case .pending:
                state = .finished(outcome)
                return nil
            case .waiting(let continuation):
                state = .finished(outcome)
                return continuation
            case .finished:
                return nil
            }
        }
        waiter?.resume(with: outcome)
    }

    func value() async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            let finished = state.withLock { state -> Result<T, any Error>? in
                if case .finished(let outcome) = state { return outcome }
                state = .waiting(continuation)
                return nil
            }
            if let finished { continuation.resume(with: finished) }
        }
    }
}
