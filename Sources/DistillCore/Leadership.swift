import Logging
import ServiceLifecycle
import Storage
import Synchronization

/// Whether this node runs the background work that one node does for all of those sharing a
/// store (automatic re-distillation, TTL sweeps, eviction, index snapshots). A node alone always
/// leads; nodes sharing a PostgreSQL store elect one (`LeaderElection`).
public final class Leadership: Sendable {
    private let leading: Mutex<Bool>

    public init(leading: Bool = true) {
        self.leading = Mutex(leading)
    }

    public var isLeader: Bool { leading.withLock { $0 } }

    func set(_ value: Bool) {
        leading.withLock { $0 = value }
    }
}

/// Takes part in a store's leader election for the life of the daemon, keeping `leadership` up to
/// date; leaves it (its claim ends with its connection) at shutdown.
public struct LeaderCampaign: Service {
    let election: any LeaderElection
    let leadership: Leadership

    public init(election: any LeaderElection, leadership: Leadership) {
        self.election = election
        self.leadership = leadership
    }

    public func run() async {
        for await leading in election.leadership().cancelOnGracefulShutdown() {
            leadership.set(leading)
        }
        leadership.set(false)
    }
}
