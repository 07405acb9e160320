import Foundation
import GRDB
import Storage

/// The daemon's SQLite database (WAL mode): one writer, concurrent readers, schema migrations.
///
/// Every commit is synced to disk (`synchronous = FULL`): a teacher answer acknowledged to a
/// client survives a crash or a power cut, and this costs one fsync against a teacher call that
/// takes hundreds of milliseconds.
public final class SQLiteStore: DistillStore {
    public let path: String
    let pool: DatabasePool

    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    public init(path: String) throws(StoreError) {
        self.path = path
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent()
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        } catch {
            throw .cannotOpen(path: path, reason: "cannot create \(directory.path): \(error.localizedDescription)")
        }
        var configuration = Configuration()
        configuration.label = "distill.store"
        configuration.busyMode = .timeout(5)
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
        }
        do {
            pool = try DatabasePool(path: path, configuration: configuration)
        } catch {
            throw .cannotOpen(path: path, reason: "\(error)")
        }
        // An older distilld would run on a schema it does not know (after a downgrade, or a
        // newer version's store copied in): refuse instead of guessing.
        if (try? pool.read(Self.migrator.hasBeenSuperseded)) == true {
            throw .cannotOpen(
                path: path,
                reason: "it was written by a newer distilld (its schema has migrations this version does not know); run that version, or restore a backup taken before the upgrade")
        }
        do {
            try Self.migrator.migrate(pool)
        } catch {
            throw .cannotOpen(path: path, reason: "\(error)")
        }
    }

    public var location: String { path }

    /// Bytes on disk: the database file plus its write-ahead log.
    public var sizeOnDisk: Int64? {
        [path, path + "-wal"].reduce(0) { total, file in
            let size = (try? FileManager.default.attributesOfItem(atPath: file)[.size] as? NSNumber)?.int64Value
            return total + (size ?? 0)
        }
    }

    /// Fails unless the database answers a trivial query.
    public func checkHealth() async throws {
        _ = try await pool.read { db in try Int.fetchOne(db, sql: "SELECT 1") }
    }

    /// Checkpoints the write-ahead log into the database file and closes every connection.
    public func close() throws {
        try pool.writeWithoutTransaction { db in
            _ = try db.checkpoint(.truncate)
        }
        try pool.close()
    }
}

