import GRDB
import Storage

// The store's record types as rows of their SQLite tables (their Codable forms are the columns).

extension CacheEntryRecord: FetchableRecord, MutablePersistableRecord {
    public static let databaseTableName = "cache_entries"

    public mutating func didInsert(_ inserted: InsertionSuccess) {
        id = inserted.rowID
    }
}

extension TeacherLogRecord: FetchableRecord, MutablePersistableRecord {
    public static let databaseTableName = "teacher_log"

    public mutating func didInsert(_ inserted: InsertionSuccess) {
        id = inserted.rowID
    }
}

extension StudentVersionRecord: FetchableRecord, MutablePersistableRecord {
    public static let databaseTableName = "student_versions"

    public mutating func didInsert(_ inserted: InsertionSuccess) {
        id = inserted.rowID
    }
}
