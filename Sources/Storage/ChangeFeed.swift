import Foundation

/// A change to what every node holds in memory, as a store shared by several nodes records it: in
/// the same transaction as the change itself, so that a node that reads the feed misses nothing.
public enum StoreChange: Sendable, Equatable {
    case cacheEntryAdded(id: Int64, scope: String)
    case cacheEntryRemoved(CacheEntryKey)
    case scopeSettingsChanged(scope: String)
    case teacherLogAppended(scope: String)
    case studentVersionsChanged(scope: String)
}

/// One change of the feed: its place in commit order, and the node that committed it.
public struct FeedEntry: Sendable, Equatable {
    public var id: Int64
    public var node: String
    public var change: StoreChange

    public init(id: Int64, node: String, change: StoreChange) {
        self.id = id
        self.node = node
        self.change = change
    }
}

/// The change feed of a store that several nodes share: each node follows what the others commit.
public protocol ChangeFeed: Sendable {
    /// This process's name in the feed (its own changes carry it).
    var nodeID: String { get }
    /// The id of the newest change (0 when there is none): a node that loads the store after
    /// reading it follows the feed from there.
    func latestChangeID() async throws -> Int64
    /// Changes with ids above `id`, in commit order: ids grow in the order changes commit, so a
    /// follower that remembers the last id it applied misses nothing. Throws `FeedGap` when
    /// changes after `id` have been pruned.
    func changes(after id: Int64, limit: Int) async throws -> [FeedEntry]
    /// Yields when the feed may have grown: on another node's commit, after each (re)connection
    /// to the store (what was committed meanwhile is read by id), and when the connection that
    /// hears of commits is lost (what it would have heard is unknown until it is back). Until dropped.
    func feedWakeups() -> AsyncStream<Void>
    /// Records that this node has applied the changes through `id` (what others see of its lag).
    func recordPosition(_ id: Int64) async throws
    /// Deletes the changes created before `date` that every node still following the feed has
    /// applied (one connected now, or heard from since `date`); how many. The feed stays bounded.
    func pruneChanges(createdBefore date: Date) async throws -> Int
}

/// Changes a follower had not applied were pruned (it was cut off from the store for longer than
/// the feed keeps them): its memory can no longer be brought up to date change by change.
public struct FeedGap: Error, CustomStringConvertible {
    public var position: Int64
    public var prunedThrough: Int64

    public init(position: Int64, prunedThrough: Int64) {
        self.position = position
        self.prunedThrough = prunedThrough
    }

    public var description: String {
        "the change feed was pruned through change \(prunedThrough) while this node stood at \(position): it was cut off from the store for longer than the feed keeps changes"
    }
}

/// One node of those sharing a store runs the background work that must not run twice at once
/// (re-distillation, TTL sweeps, eviction, index snapshots): the leader.
public protocol LeaderElection: Sendable {
    /// Yields true when this node becomes the leader and false when it stops being it (its
    /// claim was lost with its connection), until dropped.
    func leadership() -> AsyncStream<Bool>
}

/// A student version's audit test as a store shared by several nodes keeps it (`SequentialTest`).
public struct AuditTestRecord: Sendable, Equatable {
    public var statistic: Double
    public var observations: Int
    public var failures: Int
    public var alarmed: Bool

    public init(statistic: Double = 0, observations: Int = 0, failures: Int = 0, alarmed: Bool = false) {
        (self.statistic, self.observations, self.failures, self.alarmed) = (statistic, observations, failures, alarmed)
    }
}

/// A store shared by several nodes keeps each student version's audit test, so that every node's
/// audits of a version count in one sequential test, in commit order.
public protocol SharedAuditTests: Sendable {
    /// Records one audit of `version`, atomically against every node's: `record` gets the test as
    /// stored (empty before the first audit) and returns it with the audit taken in. When the test
    /// alarms with this audit, the version is suspended in the same commit (`suspended`: it was
    /// this audit), and every node hears of it through the feed.
    func recordAudit(
        version: Int64, _ record: @escaping @Sendable (AuditTestRecord) -> AuditTestRecord
    ) async throws -> (test: AuditTestRecord, suspended: Bool)
}
