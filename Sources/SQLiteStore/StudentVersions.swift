import Foundation
import GRDB
import Storage

extension SQLiteStore {
    /// Stores a new version and returns its id. An active one retires its scope's previous active
    /// version in the same transaction: a scope never has two, nor none because of a crash between.
    public func addStudentVersion(_ version: StudentVersionRecord) async throws -> Int64 {
        try await pool.write { db in
            var version = version
            if version.status == .active {
                try db.execute(
                    sql: "UPDATE student_versions SET status = 'retired' WHERE scope = ? AND status = 'active'",
                    arguments: [version.scope])
            }
            try version.insert(db)
            return version.id!
        }
    }

    /// Makes `id` its scope's active version and retires the one it replaces, in one transaction.
    public func activateStudentVersion(id: Int64) async throws {
        try await pool.write { db in
            guard let scope = try String.fetchOne(db, sql: "SELECT scope FROM student_versions WHERE id = ?", arguments: [id]) else {
                throw StoreError.noSuchRow(table: "student_versions", id: id)
            }
            try db.execute(
                sql: "UPDATE student_versions SET status = 'retired' WHERE scope = ? AND status = 'active' AND id != ?",
                arguments: [scope, id])
            try db.execute(sql: "UPDATE student_versions SET status = 'active' WHERE id = ?", arguments: [id])
        }
    }

    public func setStudentVersionStatus(id: Int64, _ status: StudentVersionRecord.Status) async throws {
        try await pool.write { db in
            try db.execute(sql: "UPDATE student_versions SET status = ? WHERE id = ?", arguments: [status.rawValue, id])
        }
    }

    public func studentVersion(id: Int64) async throws -> StudentVersionRecord? {
        try await pool.read { db in try StudentVersionRecord.fetchOne(db, key: id) }
    }

    /// Each scope's current version: its active one, else its newest suspended one (the teacher
    /// answers that scope, but the version is still the one it serves again after a rollback or
    /// a promotion, and the one `cachectl student status` shows).
    public func currentStudentVersions() async throws -> [StudentVersionRecord] {
        let versions = try await pool.read { db in
            try StudentVersionRecord
                .filter([StudentVersionRecord.Status.active.rawValue, StudentVersionRecord.Status.suspended.rawValue].contains(Column("status")))
                .order(Column("id").desc)
                .fetchAll(db)
        }
        let byScope = Dictionary(grouping: versions, by: \.scope).mapValues { scoped in
            scoped.first { $0.status == .active } ?? scoped[0]
        }
        return byScope.values.sorted { ($0.id ?? 0) < ($1.id ?? 0) }
    }

    /// Versions, newest first; all scopes unless one is given; without their serialized models
    /// (`model` is empty), which can be large: `studentVersion(id:)` has them.
    public func studentVersions(scope: String?) async throws -> [StudentVersionRecord] {
        try await pool.read { db in
            var request = StudentVersionRecord.all().select(
                [Column("id"), Column("scope"), Column("created_at"), Column("status"), SQL("x'' AS model"),
                 Column("metrics"), Column("trained_through"), Column("training_seconds")])
            if let scope { request = request.filter(Column("scope") == scope) }
            return try request.order(Column("id").desc).fetchAll(db)
        }
    }
}
