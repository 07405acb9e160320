import Foundation
import SQLiteStore
import Storage
import Synchronization
import Testing

@testable import DistillCore

/// The follower against a feed the test drives: its lag and retries while the store cannot be
/// read, the leader's pruning, and the stop when changes it needed were pruned.
@Suite struct ClusterFollowerTests {
    /// A change feed whose readability the test switches, and the follower's waits before a
    /// retry, which end when the test says; it reports each call.
    final class ScriptedFeed: ChangeFeed {
        enum Call: Equatable { case read, recorded(Int64), pruned(Date), waiting(Duration) }

        let nodeID = "this"
        let wakeups: AsyncStream<Void>
        let wake: AsyncStream<Void>.Continuation
        let calls: AsyncStream<Call>
        private let call: AsyncStream<Call>.Continuation
        /// nil: the store cannot be read; else what `changes(after:)` throws or returns.
        let script = Mutex<Result<[FeedEntry], any Error>?>(.success([]))
        private let waiting = Mutex<CheckedContinuation<Void, Never>?>(nil)

        init() {
            (wakeups, wake) = AsyncStream.makeStream(of: Void.self)
            (calls, call) = AsyncStream.makeStream(of: Call.self)
        }

        func latestChangeID() async throws -> Int64 { 0 }
        func feedWakeups() -> AsyncStream<Void> { wakeups }

        func changes(after id: Int64, limit: Int) async throws -> [FeedEntry] {
            call.yield(.read)
            guard let result = script.withLock({ $0 }) else { throw StoreError.unavailable(location: "scripted", reason: "down") }
            return try result.get().filter { $0.id > id }
        }

        func recordPosition(_ id: Int64) async throws { call.yield(.recorded(id)) }

        func pruneChanges(createdBefore date: Date) async throws -> Int {
            call.yield(.pruned(date))
            return 0
        }

        func sleep(for duration: Duration) async {
            await withCheckedContinuation { continuation in
                waiting.withLock { $0 = continuation }
                call.yield(.waiting(duration))
            }
        }

        /// Ends the wait the follower reported last.
        func endWait() { waiting.withLock { $0.take() }?.resume() }
    }

    let store: SQLiteStore
    let feed = ScriptedFeed()
    let clock = ManualClock()

    init() throws {
        store = try SQLiteStore(path: FileManager.default.temporaryDirectory.appendingPathComponent("distill-follower-\(UUID().uuidString)/distill.sqlite").path)
    }

    func follower(leading: Bool) -> ClusterFollower {
        ClusterFollower(
            feed: feed, store: store, from: 0, cache: nil, students: nil, leadership: Leadership(leading: leading), clock: clock,
            sleep: { [feed] in await feed.sleep(for: $0) }, logger: quietLogger)
    }

    @Test func itsLagGrowsAndItRetriesWhileTheFeedCannotBeReadAndTheLeaderPrunesOnceAMinute() async throws {
        let follower = follower(leading: true)
        let running = Task { try await follower.run() }
        var calls = feed.calls.makeAsyncIterator()
        #expect(follower.lagSeconds == 0)

        feed.wake.yield()
        #expect(await calls.next() == .read)
        #expect(await calls.next() == .recorded(0))
        #expect(await calls.next() == .pruned(clock.now.addingTimeInterval(-ClusterFollower.feedRetention)))
        #expect(follower.lagSeconds == 0)

        // Woken (a commit heard of, or the connection lost) while the store cannot be read: behind
        // from then on, and it tries again by itself, waiting longer each time, with no other wake-up.
        feed.script.withLock { $0 = nil }
        feed.wake.yield()
        #expect(await calls.next() == .read)
        #expect(await calls.next() == .waiting(.seconds(1)))
        clock.advance(by: 7)
        #expect(follower.lagSeconds == 7)
        feed.endWait()
        #expect(await calls.next() == .read)
        #expect(await calls.next() == .waiting(.seconds(2)))

        // Readable again: the retry catches up, and it is not pruned again within the minute.
        feed.script.withLock { $0 = .success([FeedEntry(id: 5, node: "this", change: .teacherLogAppended(scope: "s"))]) }
        feed.endWait()
        #expect(await calls.next() == .read)
        #expect(await calls.next() == .recorded(5))
        #expect(follower.lagSeconds == 0)
        clock.advance(by: ClusterFollower.pruneInterval)
        feed.wake.yield()
        #expect(await calls.next() == .read)
        #expect(await calls.next() == .recorded(5))
        #expect(await calls.next() == .pruned(clock.now.addingTimeInterval(-ClusterFollower.feedRetention)))
        running.cancel()
    }

    @Test func itsRetriesWaitTwiceAsLongEachTimeUpToThirtySeconds() {
        #expect((1...8).map { ClusterFollower.retryDelay(afterFailures: $0) } == [1, 2, 4, 8, 16, 30, 30, 30].map { .seconds($0) })
    }

    @Test func aNodeThatDoesNotLeadNeverPrunes() async throws {
        let follower = follower(leading: false)
        try await follower.catchUp()
        try await follower.catchUp()
        var calls = feed.calls.makeAsyncIterator()
        for _ in 0..<2 {
            #expect(await calls.next() == .read)
            #expect(await calls.next() == .recorded(0), "no prune after it")
        }
    }

    @Test func aFollowerThatFindsAGapInTheFeedStops() async throws {
        let follower = follower(leading: false)
        feed.script.withLock { $0 = .failure(FeedGap(position: 0, prunedThrough: 9)) }
        feed.wake.yield()
        await #expect(throws: FeedGap.self) { try await follower.run() }
    }
}
