import Foundation
import Logging
import PostgresNIO
import Storage

extension PostgresStore: LeaderElection {
    /// The advisory lock whose holder leads (the same constant on every node).
    static let leaderLock: Int64 = 0x6469_7374_696c_6c03

    /// Leadership is a session-level advisory lock held on a connection of its own: each node
    /// waits for it in `pg_advisory_lock` (no polling: PostgreSQL grants it to a waiter the moment
    /// its holder's session ends, as when the leader's process dies), and holds it until that
    /// connection is lost. It then tries again, after a growing delay.
    public func leadership() -> AsyncStream<Bool> {
        let (stream, continuation) = AsyncStream.makeStream(of: Bool.self)
        let configuration = configuration
        let logger = logger
        let nodeID = nodeID
        let campaign = Task {
            var delay = Duration.milliseconds(100)
            continuation.yield(false)
            while !Task.isCancelled {
                do {
                    let connection = try await PostgresConnection.connect(
                        configuration: try configuration.connectionConfiguration, id: 1, logger: logger)
                    do {
                        try await connection.query("SELECT pg_advisory_lock(\(Self.leaderLock))", logger: logger).drain()
                        delay = .milliseconds(100)
                        logger.notice("this node leads the background work", metadata: ["distill.node": "\(nodeID)"])
                        continuation.yield(true)
                        try await withTaskCancellationHandler {
                            try await connection.closeFuture.get()
                        } onCancel: {
                            _ = connection.close() as EventLoopFuture<Void>
                        }
                    } catch {
                        // Awaited: a connection released before its channel is closed trips postgres-nio's
                        // assertion (a crash of debug builds, seen when PostgreSQL stopped under a waiting node).
                        try? await connection.close()
                        throw error
                    }
                    continuation.yield(false)
                } catch {
                    continuation.yield(false)
                    if Task.isCancelled { break }
                    logger.warning("lost the connection that holds or waits for leadership; reconnecting", metadata: ["distill.error": "\(Self.describe(error))"])
                }
                if Task.isCancelled { break }
                try? await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(5))
            }
            continuation.finish()
        }
        continuation.onTermination = { _ in campaign.cancel() }
        // Closing the store ends the campaign too: its lock goes with its connection.
        campaigns.add(campaign)
        return stream
    }
}

extension PostgresStore {
    /// Who leads and who waits to (nodes by name, as their connections' application_name), from
    /// PostgreSQL's own lock table: what `cachectl` shows of the cluster.
    public func leadershipState() async throws -> (leader: String?, waiting: [String]) {
        let rows = try await query(
            """
            SELECT a.application_name, l.granted FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
            WHERE l.locktype = 'advisory' AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
              AND l.classid = \(Self.leaderLock >> 32)::oid AND l.objid = \(Self.leaderLock & 0xffff_ffff)::oid AND l.objsubid = 1
            ORDER BY a.backend_start
            """,
            logger: logger
        ).all { try $0.decode((String, Bool).self) }
        return (rows.first { $0.1 }?.0, rows.filter { !$0.1 }.map(\.0))
    }
}
