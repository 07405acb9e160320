import Foundation
import GRDB
import Storage

extension SQLiteStore {
    /// Copies the database as of one moment to a new file at `path` with SQLite's online backup,
    /// then checks the copy (`PRAGMA integrity_check`).
    ///
    /// The copy reads one snapshot inside a read transaction: in WAL mode writers go on committing
    /// meanwhile, and nothing they commit after the snapshot is in the copy. Every page goes in one
    /// step, so the backup never restarts because the source changed. The work runs on GRDB's
    /// own queues, not on the caller's thread.
    public func backup(to path: String) async throws(StoreError) -> BackupSummary {
        guard !FileManager.default.fileExists(atPath: path) else {
            throw .backupFailed(path: path, reason: "the file exists")
        }
        do {
            let copy = try DatabaseQueue(path: path)
            try await pool.read { source in
                try copy.writeWithoutTransaction { destination in
                    try source.backup(to: destination)
                    // A single file (no -wal beside it): an archive, readable by any sqlite3.
                    try destination.execute(sql: "PRAGMA journal_mode = DELETE")
                }
            }
            let (teacherLogRows, cacheEntries) = try await copy.read { db in
                let problems = try String.fetchAll(db, sql: "PRAGMA integrity_check")
                guard problems == ["ok"] else {
                    throw StoreError.backupFailed(
                        path: path, reason: "the copy fails its integrity check: \(problems.prefix(3).joined(separator: "; "))")
                }
                return (
                    try Int64(TeacherLogRecord.fetchCount(db)),
                    try Int64.fetchOne(db, sql: "SELECT count(*) FROM cache_entries") ?? 0
                )
            }
            try copy.close()
            let size = try FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber
            return BackupSummary(bytes: size?.int64Value ?? 0, teacherLogRows: teacherLogRows, cacheEntries: cacheEntries)
        } catch let error as StoreError {
            try? FileManager.default.removeItem(atPath: path)
            throw error
        } catch {
            try? FileManager.default.removeItem(atPath: path)
            throw .backupFailed(path: path, reason: "\(error)")
        }
    }
}
