import Foundation
import Logging
import ServiceLifecycle
import Storage
import Synchronization

/// Keeps a node's memory in line with what the other nodes of a shared store commit: cache entries
/// join or leave its exact maps and vector indexes, scope settings and student versions change.
///
/// It reads the store's change feed by id, from where it stands, whenever the store says the
/// feed may have grown (a notification, or a reconnection after which notifications may have
/// been missed), and again after a backoff when a read fails: nothing is skipped, and applying a
/// change twice changes nothing. On the leader, it also prunes the feed of what every node has
/// applied, past `feedRetention`.
public final class ClusterFollower: Service, Sendable {
    let feed: any ChangeFeed
    let store: any DistillStore
    let cache: SemanticCache?
    let students: Students?
    let leadership: Leadership
    let clock: any WallClock
    /// How the follower waits before it retries a failed catch-up (the tests drive it).
    let sleep: @Sendable (Duration) async throws -> Void
    let logger: Logger
    private let progress: Mutex<Progress>

    private struct Progress {
        /// The newest change applied.
        var position: Int64
        /// Since when the feed may hold changes not applied yet (nil: none known of).
        var behindSince: Date?
        var prunedAt: Date?
    }

    static let pageSize = 1000
    /// How long the feed keeps changes every node has applied: a node cut off from the store for
    /// longer finds a gap on its return, and stops (its supervisor restarts it, and it loads afresh).
    static let feedRetention: TimeInterval = 3600
    /// How often the leader prunes, at most.
    static let pruneInterval: TimeInterval = 60

    /// `position`: the newest change already reflected in memory (read before the memory was
    /// loaded from the store).
    public init(
        feed: any ChangeFeed, store: any DistillStore, from position: Int64, cache: SemanticCache?, students: Students?,
        leadership: Leadership = Leadership(), clock: any WallClock = SystemClock(),
        sleep: @escaping @Sendable (Duration) async throws -> Void = { try await Task.sleep(for: $0) }, logger: Logger
    ) {
        self.feed = feed
        self.store = store
        self.progress = Mutex(Progress(position: position))
        self.cache = cache
        self.students = students
        self.leadership = leadership
        self.clock = clock
        self.sleep = sleep
        self.logger = logger
    }

    /// This node's name in the feed.
    public var nodeID: String { feed.nodeID }

    /// The id of the newest change applied.
    public var appliedThrough: Int64 { progress.withLock { $0.position } }

    /// How long this node's memory may have trailed the store: 0 while it has applied every
    /// change it has heard of; else the time since it first heard of one it has not applied (or
    /// lost the connection that hears of them).
    public var lagSeconds: Double {
        let since = progress.withLock { $0.behindSince }
        return since.map { max(0, clock.now.timeIntervalSince($0)) } ?? 0
    }

    public func run() async throws {
        // The store's wake-ups and this follower's own retries, coalesced: one catch-up reads all.
        let (wakeups, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        let storeWakeups = feed.feedWakeups()  // subscribed now: a commit from here on wakes it
        let relay = Task {
            for await _ in storeWakeups { wake.yield() }
            wake.finish()
        }
        var retry: Task<Void, Never>?
        defer {
            relay.cancel()
            retry?.cancel()
        }
        var failures = 0
        for await _ in wakeups.cancelOnGracefulShutdown() {
            retry?.cancel()
            let now = clock.now
            progress.withLock { $0.behindSince = $0.behindSince ?? now }
            do {
                try await catchUp()
                failures = 0
            } catch let gap as FeedGap {
                logger.error("this node missed changes it can no longer read; stopping, to be restarted", metadata: ["distill.error": "\(gap)"])
                throw gap
            } catch {
                // Tried again after a backoff, not only on the next wake-up: in a quiet cluster no
                // commit would come to wake it, and the node would stay behind.
                failures += 1
                let delay = Self.retryDelay(afterFailures: failures)
                logger.warning(
                    "cannot read the other nodes' changes yet; trying again",
                    metadata: ["distill.error": "\(error)", "distill.retry_in": "\(delay)"])
                retry = Task { [sleep] in
                    guard (try? await sleep(delay)) != nil else { return }
                    wake.yield()
                }
            }
        }
    }

    /// 1 s after the first failed catch-up, doubling with each failure in a row, up to 30 s.
    static func retryDelay(afterFailures failures: Int) -> Duration {
        .seconds(min(30, 1 << min(failures - 1, 5)))
    }

    /// Applies every change committed after the current position; on the leader, prunes the feed
    /// when due.
    public func catchUp() async throws {
        while true {
            let page = try await feed.changes(after: appliedThrough, limit: Self.pageSize)
            for entry in page {
                if entry.node != feed.nodeID { try await apply(entry.change) }
                progress.withLock { $0.position = entry.id }
            }
            if page.count < Self.pageSize { break }
        }
        progress.withLock { $0.behindSince = nil }
        try await feed.recordPosition(appliedThrough)
        await pruneIfDue()
    }

    private func pruneIfDue() async {
        let now = clock.now
        let due = progress.withLock { progress in
            guard leadership.isLeader, progress.prunedAt.map({ now.timeIntervalSince($0) >= Self.pruneInterval }) ?? true else { return false }
            progress.prunedAt = now
            return true
        }
        guard due else { return }
        do {
            let pruned = try await feed.pruneChanges(createdBefore: now.addingTimeInterval(-Self.feedRetention))
            if pruned > 0 { logger.info("change feed pruned", metadata: ["distill.deleted": "\(pruned)"]) }
        } catch {
            logger.warning("cannot prune the change feed; trying again later", metadata: ["distill.error": "\(error)"])
        }
    }

    private func apply(_ change: StoreChange) async throws {
        switch change {
        case .cacheEntryAdded(let id, _):
            // Gone already (replaced, deleted): its removal follows in the feed, or came first.
            if let cache, let entry = try await store.cacheEntry(id: id) { cache.follow(added: entry) }
        case .cacheEntryRemoved(let key):
            cache?.follow(removed: key)
        case .scopeSettingsChanged(let scope):
            try await cache?.reloadSettings(changed: scope)
        case .studentVersionsChanged(let scope):
            try await students?.follow(scope: scope)
        case .teacherLogAppended:
            // The distiller hears of these from the store's own teacherLogCommits().
            break
        }
    }
}
