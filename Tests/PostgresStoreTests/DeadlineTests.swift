import Synchronization
import Testing

@testable import PostgresStore

/// `firstWithin`, which bounds every PostgreSQL operation: the caller gets the first of the
/// operation's outcome and the deadline, even when the operation ignores its cancellation.
@Suite struct DeadlineTests {
    /// An operation that waits until the test lets it go, whatever its cancellation says.
    final class Stuck: Sendable {
        private let waiter = Mutex<CheckedContinuation<Void, Never>?>(nil)
        let started: AsyncStream<Void>
        private let start: AsyncStream<Void>.Continuation

        init() { (started, start) = AsyncStream.makeStream(of: Void.self) }

        func run() async -> Int {
            await withCheckedContinuation { continuation in
                waiter.withLock { $0 = continuation }
                start.yield()
            }
            return 7
        }

        func release() { waiter.withLock { $0.take() }?.resume() }
    }

    @Test func anOperationThatIgnoresItsCancellationDoesNotHoldTheCallerPastTheDeadline() async throws {
        let stuck = Stuck()
        let value = try await firstWithin(.milliseconds(10)) { await stuck.run() }
        #expect(value == nil, "the deadline came first")
        var started = stuck.started.makeAsyncIterator()
        await started.next()
        stuck.release()
    }

    @Test func theOperationsOutcomeComesFirstWhenItIsThere() async throws {
        #expect(try await firstWithin(.seconds(60)) { 7 } == 7)
        await #expect(throws: CancellationError.self) {
            try await firstWithin(.seconds(60)) { () async throws -> Int in throw CancellationError() }
        }
        let nothing: Int?? = try await firstWithin(.seconds(60)) { Int?.none }
        #expect(nothing == .some(nil), "an operation's own nil is not the deadline's")
    }
}
