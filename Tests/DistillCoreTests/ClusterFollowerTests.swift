import Foundation
import SQLiteStore
import Storage
import Synchronization
import Testing

@testable import DistillCore

/// The follower against a feed the test drives: its lag while the store cannot be read, the
/// leader's pruning, and the stop when changes it needed were pruned.
@Suite struct ClusterFollowerTests {
    /// A change feed whose readability the test switches; it reports each call.
    final class ScriptedFeed: ChangeFeed {
        enum Call: Equatable { case read, recorded(Int64), pruned(Date) }

        let nodeID = "this"
        let wakeups: AsyncStream<Void>
        let wake: AsyncStream<Void>.Continuation
        let calls: AsyncStream<Call>
        private let call: AsyncStream<Call>.Continuation
        /// nil: the store cannot be read; else what `changes(after:)` throws or returns.
        let script = Mutex<Result<[FeedEntry], any Error>?>(.success([]))

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
            logger: quietLogger)
    }

    @Test func itsLagGrowsWhileTheFeedCannotBeReadAndTheLeaderPrunesOnceAMinute() async throws {
        let follower = follower(leading: true)
        let running = Task { try await follower.run() }
        var calls = feed.calls.makeAsyncIterator()
        #expect(follower.lagSeconds == 0)

        feed.wake.yield()
        #expect(await calls.next() == .read)
        #expect(await calls.next() == .recorded(0))
        #expect(await calls.next() == .pruned(clock.now.addingTimeInterval(-ClusterFollower.feedRetention)))
        #expect(follower.lagSeconds == 0)

        // Woken (a commit heard of, or the connection lost) while the store cannot be read: behind from then on.
        feed.script.withLock { $0 = nil }
        feed.wake.yield()
        #expect(await calls.next() == .read)
        clock.advance(by: 7)
        #expect(follower.lagSeconds == 7)

        // Readable again: caught up, and not pruned again within the minute.
        feed.script.withLock { $0 = .success([FeedEntry(id: 5, node: "this", change: .teacherLogAppended(scope: "s"))]) }
        feed.wake.yield()
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
