import Logging
import ServiceLifecycle

/// The cache's background work, as a service of the daemon's group: writes batched hit counts
/// and what the verified cache learned, deletes expired entries, and snapshots changed vector indexes; and does all three once more
/// at shutdown (after the listeners, which stop first).
public struct CacheUpkeep: Service {
    let cache: SemanticCache
    let flushInterval: Duration
    let snapshotInterval: Duration
    let logger: Logger

    public init(cache: SemanticCache, flushInterval: Duration, snapshotInterval: Duration, logger: Logger) {
        self.cache = cache
        self.flushInterval = flushInterval
        self.snapshotInterval = snapshotInterval
        self.logger = logger
    }

    public func run() async {
        var nextSnapshot = ContinuousClock.now + snapshotInterval
        while !Task.isShuttingDownGracefully, !Task.isCancelled {
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: flushInterval) }
            guard !Task.isShuttingDownGracefully else { break }
            let snapshot = ContinuousClock.now >= nextSnapshot
            if snapshot { nextSnapshot = .now + snapshotInterval }
            await upkeep(snapshot: snapshot)
        }
        await upkeep(snapshot: true)
    }

    private func upkeep(snapshot: Bool) async {
        do {
            try await cache.flushHits()
            try await cache.flushBeliefs()
            try await cache.removeExpired()
            if snapshot { try await cache.snapshotChangedScopes() }
        } catch {
            cache.metrics.recordStoreFailure(.cacheUpkeep)
            logger.error("cache upkeep failed; trying again later", metadata: ["distill.error": "\(error)"])
        }
    }
}
