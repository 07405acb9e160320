import Logging
import ServiceLifecycle
import Storage
import Synchronization

/// Keeps a node's memory in line with what the other nodes of a shared store commit: cache entries
/// join or leave its exact maps and vector indexes, scope settings and student versions change.
///
/// It reads the store's change feed by id, from where it stands, whenever the store says the
/// feed may have grown (a notification, or a reconnection after which notifications may have
/// been missed): nothing is skipped, and applying a change twice changes nothing.
public final class ClusterFollower: Service, Sendable {
    let feed: any ChangeFeed
    let store: any DistillStore
    let cache: SemanticCache?
    let students: Students?
    let logger: Logger
    private let position: Mutex<Int64>

    static let pageSize = 1000

    /// `position`: the newest change already reflected in memory (read before the memory was
    /// loaded from the store).
    public init(feed: any ChangeFeed, store: any DistillStore, from position: Int64, cache: SemanticCache?, students: Students?, logger: Logger) {
        self.feed = feed
        self.store = store
        self.position = Mutex(position)
        self.cache = cache
        self.students = students
        self.logger = logger
    }

    /// This node's name in the feed.
    public var nodeID: String { feed.nodeID }

    /// The id of the newest change applied.
    public var appliedThrough: Int64 { position.withLock { $0 } }

    public func run() async {
        for await _ in feed.feedWakeups().cancelOnGracefulShutdown() {
            do {
                try await catchUp()
            } catch {
                // The next wake-up (at the latest, the reconnection) tries again from the same place.
                logger.warning("cannot read the other nodes' changes yet", metadata: ["distill.error": "\(error)"])
            }
        }
    }

    /// Applies every change committed after the current position.
    public func catchUp() async throws {
        while true {
            let page = try await feed.changes(after: appliedThrough, limit: Self.pageSize)
            for entry in page {
                if entry.node != feed.nodeID { try await apply(entry.change) }
                position.withLock { $0 = entry.id }
            }
            if page.count < Self.pageSize { break }
        }
        try await feed.recordPosition(appliedThrough)
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
