import Foundation
import Logging
import PostgresNIO
import Storage
import Synchronization

/// The store of several nodes: PostgreSQL, through a pool of connections.
///
/// A commit returns once PostgreSQL has committed it (`synchronous_commit` as the server sets it;
/// its default, `on`, flushes the WAL first): a teacher answer acknowledged to a client survives a
/// crash of any node. Every change to what nodes hold in memory (cache entries, scope settings,
/// student versions, the teacher log) is recorded in the `changes` table in its own transaction:
/// the change feed that the other nodes follow (`ChangeFeed`).
public final class PostgresStore: DistillStore, ChangeFeed {
    public let configuration: PostgresStoreConfiguration
    public let nodeID: String
    let client: PostgresClient
    let logger: Logger
    private let runner: Task<Void, Never>
    private let listener: Task<Void, Never>
    /// Who waits for word of commits: `teacherLogCommits()` and `feedWakeups()` readers.
    private let subscribers = Subscribers()
    /// The tasks that hold or wait for leadership (`leadership()`).
    let campaigns = Campaigns()

    /// The channel of `NOTIFY`: every transaction that records changes notifies it.
    static let channel = "distill_changes"

    /// Connects, waits until the server answers (at most `connectTimeout`), and brings the schema
    /// up to date.
    public static func open(
        configuration: PostgresStoreConfiguration, nodeID: String = PostgresStore.makeNodeID(), logger: Logger
    ) async throws(StoreError) -> PostgresStore {
        let store = PostgresStore(configuration: configuration, nodeID: nodeID, logger: logger)
        do {
            try await store.migrate()
        } catch {
            store.shutdown()
            if let refused = ((error as? PostgresTransactionError)?.closureError ?? error) as? StoreError { throw refused }
            throw .cannotOpen(path: configuration.location, reason: PostgresStore.describe(error))
        }
        return store
    }

    private init(configuration: PostgresStoreConfiguration, nodeID: String, logger: Logger) {
        var configuration = configuration
        // PostgreSQL keeps the first 63 bytes.
        configuration.applicationName = String(decoding: Array(nodeID.utf8.prefix(63)), as: UTF8.self)
        self.configuration = configuration
        self.nodeID = nodeID
        self.logger = logger
        let client = PostgresClient(configuration: configuration.clientConfiguration, backgroundLogger: logger)
        self.client = client
        runner = Task { await client.run() }
        let subscribers = self.subscribers
        listener = Task {
            await Self.listen(configuration: configuration, logger: logger) { subscribers.heard($0) }
        }
    }

    /// A node's name in the feed: host, process and a random suffix (a restarted process on the
    /// same host is another node).
    public static func makeNodeID() -> String {
        "\(ProcessInfo.processInfo.hostName.prefix(40))/\(getpid())/\(String(UInt32.random(in: 0...UInt32.max), radix: 36))"
    }

    public var location: String { configuration.location }

    /// Not known from here (the server's disks are its own).
    public var sizeOnDisk: Int64? { nil }

    public func checkHealth() async throws {
        try await query("SELECT 1", logger: logger).drain()
    }

    public func close() throws {
        shutdown()
    }

    private func shutdown() {
        listener.cancel()
        runner.cancel()
        subscribers.finishAll()
        campaigns.cancelAll()
    }

    /// A PostgreSQL store is backed up on the server's side: pg_dump, or the managed service's
    /// backups (docs/operations.md); one node's copy would not be a copy of the cluster's store.
    public func backup(to path: String) async throws(StoreError) -> BackupSummary {
        throw .backupFailed(
            path: path,
            reason: "the store is PostgreSQL (\(location)): back it up with pg_dump or the server's own backups")
    }

    // MARK: Transactions

    /// Runs `body` in a transaction that records changes: it first takes the feed's lock, which it
    /// holds until it commits, so that change ids are assigned in commit order (a follower reading
    /// "after id N" can never miss a change committed later under a smaller id), and it notifies
    /// the other nodes as it commits.
    func write<Result: Sendable>(_ body: @escaping @Sendable (PostgresConnection) async throws -> Result) async throws -> Result {
        try await transaction { [logger] connection in
            try await connection.query("SELECT pg_advisory_xact_lock(\(Self.feedLock))", logger: logger).drain()
            let result = try await body(connection)
            try await connection.query("SELECT pg_notify(\(Self.channel), '')", logger: logger).drain()
            return result
        }
    }

    /// Runs `body` in a transaction on a connection of the pool (committed if it returns, rolled
    /// back if it throws), within `operationTimeout`.
    func transaction<Result: Sendable>(_ body: @escaping @Sendable (PostgresConnection) async throws -> Result) async throws -> Result {
        try await bounded { [client, logger] in
            try await client.withTransaction(logger: logger) { connection in try await body(connection) }
        }
    }

    /// A statement's rows, read in full, within `operationTimeout`.
    func query(_ query: PostgresQuery, logger: Logger) async throws -> [PostgresRow] {
        try await bounded { [client] in try await client.query(query, logger: logger).collect() }
    }

    /// Fails with `StoreError.unavailable` when `operation` has not finished within
    /// `operationTimeout`: while PostgreSQL is down, postgres-nio's pool waits up to a minute for
    /// a connection, and a query sent just before it went away may wait longer; a request waiting
    /// for a commit should fail fast (503) instead, and a node's follower try again.
    private func bounded<T: Sendable>(_ operation: @escaping @Sendable () async throws -> T) async throws -> T {
        let timeout = configuration.operationTimeout
        do {
            guard let value = try await firstWithin(timeout, operation) else {
                throw StoreError.unavailable(location: location, reason: "PostgreSQL did not answer within \(timeout)")
            }
            return value
        } catch let error as StoreError {
            throw error
        } catch let error as PostgresTransactionError where error.closureError is StoreError {
            // What the transaction's own code found (e.g. no such row), not PostgreSQL's failure.
            throw error.closureError!
        } catch {
            throw StoreError.unavailable(location: location, reason: Self.describe(error))
        }
    }

    /// The advisory lock that serializes change-recording transactions (an arbitrary constant,
    /// the same on every node).
    static let feedLock: Int64 = 0x6469_7374_696c_6c01

    /// Records changes in the feed from within a `write` transaction, in one statement.
    func log(_ changes: [StoreChange], on connection: PostgresConnection) async throws {
        guard !changes.isEmpty else { return }
        let rows = changes.map(Self.columns)
        try await connection.query(
            """
            INSERT INTO changes (node, kind, scope, entry_id, exact_key)
            SELECT \(nodeID), * FROM unnest(\(rows.map(\.kind))::text[], \(rows.map(\.scope))::text[], \(rows.map(\.entryID))::bigint[], \(rows.map(\.exactKey))::text[])
            """,
            logger: logger
        ).drain()
    }

    /// Wakes this node's own `teacherLogCommits()` readers (other nodes hear of it from NOTIFY).
    func announceTeacherLogCommit() {
        subscribers.wake(.teacherLog)
    }

    func subscribe(feed: Bool) -> AsyncStream<Void> {
        subscribers.add(feed: feed)
    }

    /// Holds a connection that LISTENs on the changes channel, and says so (`listening`, after
    /// each (re)connection), `notified` for each notification, `lost` when the connection is;
    /// reconnects with a growing delay (up to 5 s), until cancelled.
    static func listen(
        configuration: PostgresStoreConfiguration, logger: Logger, event: @escaping @Sendable (ListenerEvent) -> Void
    ) async {
        var delay = Duration.milliseconds(100)
        while !Task.isCancelled {
            do {
                let connection = try await PostgresConnection.connect(
                    configuration: try configuration.connectionConfiguration, id: 0, logger: logger)
                do {
                    try await connection.listen(on: channel) { notifications in
                        delay = .milliseconds(100)
                        event(.listening)
                        for try await _ in notifications { event(.notified) }
                    }
                    try? await connection.close()
                } catch {
                    try? await connection.close()
                    throw error
                }
            } catch {
                event(.lost)
                if Task.isCancelled { return }
                logger.warning(
                    "lost the PostgreSQL connection that follows other nodes' changes; reconnecting",
                    metadata: ["distill.error": "\(describe(error))", "distill.retry_ms": "\(delay.components.seconds * 1000 + delay.components.attoseconds / 1_000_000_000_000_000)"])
            }
            try? await Task.sleep(for: delay)
            delay = min(delay * 2, .seconds(5))
        }
    }

    /// An error as an operator can act on it (postgres-nio's own descriptions hide the server's message).
    static func describe(_ error: any Error) -> String {
        if let error = error as? PostgresTransactionError {
            return describe(error.closureError ?? error.commitError ?? error.beginError ?? error.rollbackError ?? error)
        }
        if let error = error as? PSQLError {
            if let message = error.serverInfo?[.message] { return "PostgreSQL: \(message)" }
            if let underlying = error.underlying { return "\(error.code): \(underlying)" }
            return "\(error.code)"
        }
        return "\(error)"
    }
}

extension Array where Element == PostgresRow {
    func drain() {}

    /// Every row, transformed.
    func all<T>(_ transform: (PostgresRow) throws -> T) throws -> [T] {
        try map(transform)
    }
}

extension PostgresRowSequence {
    /// Drains the rows (a statement's result must be read before the connection runs another).
    func drain() async throws {
        for try await _ in self {}
    }

    /// Every row, transformed.
    func all<T>(_ transform: (PostgresRow) throws -> T) async throws -> [T] {
        var values: [T] = []
        for try await row in self { values.append(try transform(row)) }
        return values
    }
}

enum ListenerEvent {
    case listening, notified, lost
}

/// The readers of `teacherLogCommits()` and `feedWakeups()`, and whether the listening
/// connection is up.
final class Subscribers: Sendable {
    private struct State {
        var teacherLog: [Int: AsyncStream<Void>.Continuation] = [:]
        var feed: [Int: AsyncStream<Void>.Continuation] = [:]
        var next = 0
        var listening = false
    }

    private let state = Mutex(State())

    func add(feed: Bool) -> AsyncStream<Void> {
        let (stream, continuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        let key = state.withLock { state in
            let key = state.next
            state.next += 1
            if feed { state.feed[key] = continuation } else { state.teacherLog[key] = continuation }
            // A new reader catches up at once when changes are being heard; else when they are.
            if state.listening { continuation.yield() }
            return key
        }
        continuation.onTermination = { [weak self] _ in
            self?.state.withLock { _ = feed ? $0.feed.removeValue(forKey: key) : $0.teacherLog.removeValue(forKey: key) }
        }
        return stream
    }

    func heard(_ event: ListenerEvent) {
        let listening = event != .lost
        let wasListening = state.withLock { state in
            defer { state.listening = listening }
            return state.listening
        }
        if listening {
            wake(.all)
        } else if wasListening {
            // The connection just lost wakes the feed's readers too (once, not at each failed
            // reconnection): what it would have heard is unknown from now on.
            wake(.feed)
        }
    }

    enum Readers { case all, teacherLog, feed }

    func wake(_ readers: Readers) {
        let woken = state.withLock {
            (readers == .feed ? [] : Array($0.teacherLog.values)) + (readers == .teacherLog ? [] : Array($0.feed.values))
        }
        woken.forEach { $0.yield() }
    }

    func finishAll() {
        let readers = state.withLock { state in
            defer { state = State() }
            return Array(state.teacherLog.values) + Array(state.feed.values)
        }
        readers.forEach { $0.finish() }
    }
}

final class Campaigns: Sendable {
    private let tasks = Mutex<[Task<Void, Never>]>([])

    func add(_ task: Task<Void, Never>) {
        tasks.withLock { $0.append(task) }
    }

    func cancelAll() {
        tasks.withLock { tasks in
            tasks.forEach { $0.cancel() }
            tasks = []
        }
    }
}
