import DistillAPI
import Foundation
import NIOCore

// The admin API, one method per endpoint (docs/api.md). Scopes may be given as unambiguous
// prefixes; distilld resolves them.
extension DistillClient {
    /// `GET /admin/status`.
    public func status() async throws -> DaemonStatus {
        try await json(Call(method: .GET, path: APIPath.adminStatus.pattern), as: DaemonStatus.self)
    }

    /// `GET /admin/stats`.
    public func stats() async throws -> DaemonStats {
        try await json(Call(method: .GET, path: APIPath.adminStats.pattern), as: DaemonStats.self)
    }

    /// `GET /admin/teacher-log`: rows with ids above `after`, oldest first.
    public func teacherLog(after: Int64 = 0, limit: Int? = nil) async throws -> TeacherLogPage {
        try await json(
            Call(method: .GET, path: APIPath.teacherLog.pattern, query: ["after": String(after), "limit": limit.map(String.init)]),
            as: TeacherLogPage.self)
    }

    /// `GET /admin/backup` written to `sink` as it arrives (a store can be larger than memory).
    /// A failed write to `sink` is rethrown as it is: it is this side's failure.
    public func backup(to sink: FileHandle) async throws -> BackupDownload {
        let response = try await execute(Call(method: .GET, path: APIPath.backup.pattern, patient: true))
        var bytes: Int64 = 0
        var iterator = response.body.makeAsyncIterator()
        while true {
            let buffer: ByteBuffer?
            do {
                buffer = try await iterator.next()
            } catch {
                throw DistillClientError.connectionFailed(address: address, reason: Self.reason(error))
            }
            guard let buffer else { break }
            try sink.write(contentsOf: buffer.readableBytesView)
            bytes += Int64(buffer.readableBytes)
        }
        let headers = response.headers
        return BackupDownload(
            bytes: bytes, expectedBytes: headers.first(name: "content-length").flatMap { Int64($0) },
            teacherLogRows: headers.first(name: DistillHeader.backupTeacherLogRows).flatMap { Int($0) },
            cacheEntries: headers.first(name: DistillHeader.backupCacheEntries).flatMap { Int($0) })
    }

    // MARK: - Cache

    /// `GET /admin/cache/entries`, oldest first.
    public func cacheEntries(scope: String? = nil, after: Int64? = nil, limit: Int? = nil) async throws -> CacheEntryPage {
        try await json(
            Call(
                method: .GET, path: APIPath.cacheEntries.pattern,
                query: ["scope": scope, "after": after.map(String.init), "limit": limit.map(String.init)]),
            as: CacheEntryPage.self)
    }

    /// `GET /admin/cache/entries/ID`, with its request's messages.
    public func cacheEntry(id: Int64) async throws -> CacheEntryInfo {
        try await json(Call(method: .GET, path: APIPath.cacheEntry.filled(String(id))), as: CacheEntryInfo.self)
    }

    /// `DELETE /admin/cache/entries/ID`: how many entries went (0 or 1).
    public func invalidateCacheEntry(id: Int64) async throws -> Int {
        try await json(Call(method: .DELETE, path: APIPath.cacheEntry.filled(String(id))), as: CacheCount.self).count
    }

    /// `POST /admin/cache/search`: the entries nearest to `text`, most similar first.
    public func searchCache(_ search: CacheSearchRequest) async throws -> [CacheSearchResult] {
        try await json(.POST, APIPath.cacheSearch.pattern, body: search, as: [CacheSearchResult].self)
    }

    /// `POST /admin/cache/purge`: how many entries went.
    public func purgeCache(_ purge: CachePurgeRequest) async throws -> Int {
        try await json(.POST, APIPath.cachePurge.pattern, body: purge, as: CacheCount.self).count
    }

    /// `GET /admin/cache/export`: a page of entries with their vectors.
    public func exportCache(after: Int64 = 0, limit: Int? = nil) async throws -> CacheExportPage {
        try await json(
            Call(method: .GET, path: APIPath.cacheExport.pattern, query: ["after": String(after), "limit": limit.map(String.init)]),
            as: CacheExportPage.self)
    }

    /// `POST /admin/cache/import`: how many entries were added.
    public func importCache(_ lines: [CacheExportLine]) async throws -> Int {
        try await json(.POST, APIPath.cacheImport.pattern, body: lines, as: CacheCount.self).count
    }

    /// `GET /admin/cache/stats`.
    public func cacheStats() async throws -> CacheStats {
        try await json(Call(method: .GET, path: APIPath.cacheStats.pattern), as: CacheStats.self)
    }

    /// `PUT /admin/cache/scopes/S`: the scope's own settings (nil fields: the global ones).
    public func configureCacheScope(_ scope: String, _ settings: CacheScopeSettings) async throws -> CacheScopeInfo {
        try await json(.PUT, APIPath.cacheScope.filled(scope), body: settings, as: CacheScopeInfo.self)
    }

    // MARK: - Students and distillation

    /// `GET /admin/student`.
    public func studentStatus() async throws -> StudentStatus {
        try await json(Call(method: .GET, path: APIPath.student.pattern), as: StudentStatus.self)
    }

    /// `GET /admin/student/versions`, newest first.
    public func studentVersions(scope: String? = nil) async throws -> [StudentVersionInfo] {
        try await json(Call(method: .GET, path: APIPath.studentVersions.pattern, query: ["scope": scope]), as: [StudentVersionInfo].self)
    }

    /// `POST /admin/teacher-log/purge`: what was deleted.
    public func purgeTeacherLog(_ purge: TeacherLogPurgeRequest) async throws -> TeacherLogPurge {
        try await json(.POST, APIPath.teacherLogPurge.pattern, body: purge, as: TeacherLogPurge.self)
    }

    /// `POST /admin/student/versions/V/promote`; `force` overrules a gate that rejected it.
    public func promoteStudentVersion(_ id: Int64, force: Bool = false) async throws -> StudentVersionInfo {
        let call = Call(method: .POST, path: APIPath.studentPromote.filled(String(id)), query: ["force": force ? "true" : nil])
        return try await json(call, as: StudentVersionInfo.self)
    }

    /// `PUT /admin/student/scopes/S`: takes the scope's student out of service or puts it back.
    public func setStudentEnabled(_ enabled: Bool, scope: String) async throws -> StudentScopeSettings {
        try await json(
            .PUT, APIPath.studentScope.filled(scope), body: StudentScopeSettings(enabled: enabled), as: StudentScopeSettings.self)
    }

    /// `POST /admin/student/rollback`: the version that serves again.
    public func rollbackStudent(scope: String? = nil) async throws -> StudentVersionInfo {
        try await json(.POST, APIPath.studentRollback.pattern, body: StudentRollbackRequest(scope: scope), as: StudentVersionInfo.self)
    }

    /// `GET /admin/distill`.
    public func distillStatus() async throws -> DistillStatus {
        try await json(Call(method: .GET, path: APIPath.distill.pattern), as: DistillStatus.self)
    }

    /// `POST /admin/distill/runs`: the runs queued.
    public func requestDistillRuns(scope: String? = nil) async throws -> [DistillRunInfo] {
        try await json(.POST, APIPath.distillRuns.pattern, body: DistillRunRequest(scope: scope), as: [DistillRunInfo].self)
    }
}

/// What `DistillClient.backup(to:)` received.
public struct BackupDownload: Sendable, Equatable {
    public var bytes: Int64
    /// What distilld announced (`content-length`).
    public var expectedBytes: Int64?
    public var teacherLogRows: Int?
    public var cacheEntries: Int?

    public init(bytes: Int64, expectedBytes: Int64?, teacherLogRows: Int?, cacheEntries: Int?) {
        (self.bytes, self.expectedBytes, self.teacherLogRows, self.cacheEntries) = (bytes, expectedBytes, teacherLogRows, cacheEntries)
    }

    /// Whether every byte distilld announced arrived.
    public var isComplete: Bool { expectedBytes == bytes }
}
