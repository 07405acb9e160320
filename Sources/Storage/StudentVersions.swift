import Foundation
import GRDB

/// One trained student of a scope: every version is kept, for rollback and for the record.
public struct StudentVersionRecord: Codable, Sendable, Equatable, FetchableRecord, MutablePersistableRecord {
    public static let databaseTableName = "student_versions"

    public enum Status: String, Codable, Sendable {
        /// Trained, not (yet) promoted.
        case candidate
        /// Serving its scope. At most one per scope.
        case active
        /// Served once; replaced by a newer version or rolled back from.
        case retired
        /// Failed the promotion gate.
        case rejected
        /// Was active until its audited answers agreed with the teacher less than the target: its scope
        /// has no student until a new version passes the gate.
        case suspended
    }

    public var id: Int64?
    public var scope: String
    public var createdAt: Date
    public var status: Status
    /// The serialized (quantized) model.
    public var model: Data
    /// Evaluation metrics, as JSON.
    public var metrics: String
    public var trainedThrough: Int64
    public var trainingSeconds: Double

    public init(
        scope: String, createdAt: Date, status: Status, model: Data, metrics: String, trainedThrough: Int64,
        trainingSeconds: Double
    ) {
        self.scope = scope
        self.createdAt = createdAt
        self.status = status
        self.model = model
        self.metrics = metrics
        self.trainedThrough = trainedThrough
        self.trainingSeconds = trainingSeconds
    }

    enum CodingKeys: String, CodingKey {
        case id, scope, status, model, metrics
        case createdAt = "created_at"
        case trainedThrough = "trained_through"
        case trainingSeconds = "training_seconds"
    }

    public mutating func didInsert(_ inserted: InsertionSuccess) {
        id = inserted.rowID
    }
}

extension Store {
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
