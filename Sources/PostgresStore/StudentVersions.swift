import Foundation
import PostgresNIO
import Storage

extension PostgresStore: SharedAuditTests {
    /// Stores a new version; an active one retires its scope's previous active version in the same
    /// transaction. Every node hears of it through the feed.
    public func addStudentVersion(_ version: StudentVersionRecord) async throws -> Int64 {
        try await write { [self] connection in
            if version.status == .active {
                try await connection.query(
                    "UPDATE student_versions SET status = 'retired' WHERE scope = \(version.scope) AND status = 'active'", logger: logger
                ).drain()
            }
            let id = try await connection.query(
                """
                INSERT INTO student_versions (scope, created_at, status, model, metrics, trained_through, training_seconds)
                VALUES (\(version.scope), \(version.createdAt), \(version.status.rawValue), \(version.model), \(version.metrics),
                  \(version.trainedThrough), \(version.trainingSeconds))
                RETURNING id
                """,
                logger: logger
            ).all { try $0.decode(Int64.self) }[0]
            try await log([.studentVersionsChanged(scope: version.scope)], on: connection)
            return id
        }
    }

    public func activateStudentVersion(id: Int64) async throws {
        try await write { [self] connection in
            guard
                let scope = try await connection.query("SELECT scope FROM student_versions WHERE id = \(id)", logger: logger)
                    .all({ try $0.decode(String.self) }).first
            else {
                throw StoreError.noSuchRow(table: "student_versions", id: id)
            }
            try await connection.query(
                "UPDATE student_versions SET status = 'retired' WHERE scope = \(scope) AND status = 'active' AND id <> \(id)", logger: logger
            ).drain()
            try await connection.query("UPDATE student_versions SET status = 'active' WHERE id = \(id)", logger: logger).drain()
            // Back in service, it is tested afresh (as a node that activates it in memory does).
            try await connection.query("DELETE FROM student_audit_tests WHERE version = \(id)", logger: logger).drain()
            try await log([.studentVersionsChanged(scope: scope)], on: connection)
        }
    }

    public func setStudentVersionStatus(id: Int64, _ status: StudentVersionRecord.Status) async throws {
        try await write { [self] connection in
            let scopes = try await connection.query(
                "UPDATE student_versions SET status = \(status.rawValue) WHERE id = \(id) RETURNING scope", logger: logger
            ).all { try $0.decode(String.self) }
            try await log(scopes.map { .studentVersionsChanged(scope: $0) }, on: connection)
        }
    }

    static let versionColumns = "id, scope, created_at, status, model, metrics, trained_through, training_seconds"

    static func version(_ row: PostgresRow) throws -> StudentVersionRecord {
        let (id, scope, createdAt, status, model, metrics, trainedThrough, trainingSeconds) =
            try row.decode((Int64, String, Date, String, Data, String, Int64, Double).self)
        var version = StudentVersionRecord(
            scope: scope, createdAt: createdAt, status: StudentVersionRecord.Status(rawValue: status) ?? .retired, model: model,
            metrics: metrics, trainedThrough: trainedThrough, trainingSeconds: trainingSeconds)
        version.id = id
        return version
    }

    public func studentVersion(id: Int64) async throws -> StudentVersionRecord? {
        try await query("SELECT \(unescaped: Self.versionColumns) FROM student_versions WHERE id = \(id)", logger: logger)
            .all(Self.version).first
    }

    /// Each scope's active version, else its newest suspended one (as `SQLiteStore` has it).
    public func currentStudentVersions() async throws -> [StudentVersionRecord] {
        try await query(
            """
            SELECT DISTINCT ON (scope) \(unescaped: Self.versionColumns) FROM student_versions
            WHERE status IN ('active', 'suspended')
            ORDER BY scope, status = 'active' DESC, id DESC
            """,
            logger: logger
        ).all(Self.version).sorted { ($0.id ?? 0) < ($1.id ?? 0) }
    }

    /// Versions, newest first, without their models (`studentVersion(id:)` has them).
    public func studentVersions(scope: String?) async throws -> [StudentVersionRecord] {
        try await query(
            """
            SELECT id, scope, created_at, status, ''::bytea, metrics, trained_through, training_seconds FROM student_versions
            WHERE \(scope)::text IS NULL OR scope = \(scope) ORDER BY id DESC
            """,
            logger: logger
        ).all(Self.version)
    }

    /// Updates the version's audit test under its row's lock, so that audits of several nodes are
    /// taken in one at a time; takes the feed's lock (as `write` does) only to suspend it.
    public func recordAudit(
        version: Int64, _ record: @escaping @Sendable (AuditTestRecord) -> AuditTestRecord
    ) async throws -> (test: AuditTestRecord, suspended: Bool) {
        try await transaction { [self] connection in
            // A row to lock, also before the first audit.
            try await connection.query(
                "INSERT INTO student_audit_tests (version) VALUES (\(version)) ON CONFLICT (version) DO NOTHING", logger: logger
            ).drain()
            let stored = try await connection.query(
                "SELECT statistic, observations, failures, alarmed FROM student_audit_tests WHERE version = \(version) FOR UPDATE",
                logger: logger
            ).all { row in
                let (statistic, observations, failures, alarmed) = try row.decode((Double, Int64, Int64, Bool).self)
                return AuditTestRecord(statistic: statistic, observations: Int(observations), failures: Int(failures), alarmed: alarmed)
            }[0]
            let test = record(stored)
            try await connection.query(
                """
                UPDATE student_audit_tests SET statistic = \(test.statistic), observations = \(Int64(test.observations)),
                  failures = \(Int64(test.failures)), alarmed = \(test.alarmed)
                WHERE version = \(version)
                """,
                logger: logger
            ).drain()
            guard test.alarmed, !stored.alarmed else { return (test, false) }
            try await connection.query("SELECT pg_advisory_xact_lock(\(Self.feedLock))", logger: logger).drain()
            let scopes = try await connection.query(
                "UPDATE student_versions SET status = 'suspended' WHERE id = \(version) AND status = 'active' RETURNING scope",
                logger: logger
            ).all { try $0.decode(String.self) }
            try await log(scopes.map { .studentVersionsChanged(scope: $0) }, on: connection)
            try await connection.query("SELECT pg_notify(\(Self.channel), '')", logger: logger).drain()
            return (test, !scopes.isEmpty)
        }
    }
}
