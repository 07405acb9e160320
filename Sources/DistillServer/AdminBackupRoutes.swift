import DistillAPI
import DistillCore
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import Storage
import Synchronization

/// `GET /admin/backup`: a consistent copy of the store, streamed to the client (`cachectl backup`).
///
/// The daemon makes the copy with SQLite's online backup into its own data directory (the one
/// place a sandboxed daemon may write), checks it, and streams it; the client writes the file
/// wherever its user may. So no client can make the daemon write to a path of its choosing, and
/// the admin API works the same over the socket and over TCP. The copy is unlinked as soon as it is
/// open: whether the transfer completes or not, and even if the daemon dies, it leaves no file.
func addBackupRoutes(to router: Router<DistillRequestContext>, system: DistillSystem) {
    let gate = BackupGate()

    router.get(APIPath.backup.route) { _, context -> Response in
        // One at a time: each needs the store's size in free space.
        guard gate.enter() else {
            throw APIError(
                status: 409, type: "invalid_request_error", code: "backup_in_progress", message: "A backup is already being made.")
        }
        defer { gate.leave() }
        let directory = system.config.store.dataDir
        removeLeftoverCopies(in: directory)
        let path = (directory as NSString).appendingPathComponent("\(partialPrefix)\(UUID().uuidString).sqlite")
        let summary: BackupSummary
        do {
            summary = try await system.store.backup(to: path)
        } catch {
            throw APIError(status: 500, type: "server_error", code: "backup_failed", message: "\(error)")
        }
        let file: FileHandle
        do {
            file = try FileHandle(forReadingFrom: URL(fileURLWithPath: path))
        } catch {
            try? FileManager.default.removeItem(atPath: path)
            throw APIError(status: 500, type: "server_error", code: "backup_failed", message: "cannot read the copy: \(error)")
        }
        unlink(path)
        context.logAdminAction(
            "backup made",
            ["distill.bytes": "\(summary.bytes)", "distill.teacher_log_rows": "\(summary.teacherLogRows)", "distill.cache_entries": "\(summary.cacheEntries)"])
        var headers: HTTPFields = [
            .contentType: "application/vnd.sqlite3", .contentLength: String(summary.bytes),
            .distillBackupTeacherLogRows: String(summary.teacherLogRows), .distillBackupCacheEntries: String(summary.cacheEntries),
        ]
        headers[.contentDisposition] = "attachment; filename=\"distill.sqlite\""
        return Response(
            status: .ok, headers: headers,
            body: ResponseBody { writer in
                defer { try? file.close() }
                while let chunk = try file.read(upToCount: 1 << 20), !chunk.isEmpty {
                    try await writer.write(ByteBuffer(bytes: chunk))
                }
                try await writer.finish(nil)
            })
    }
}

/// Copies are named so; one left by a daemon that died while copying is removed by the next backup.
private let partialPrefix = "backup-in-progress-"

private func removeLeftoverCopies(in directory: String) {
    let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
    for name in names where name.hasPrefix(partialPrefix) {
        try? FileManager.default.removeItem(atPath: (directory as NSString).appendingPathComponent(name))
    }
}

/// Admits one backup at a time.
private final class BackupGate: Sendable {
    private let running = Mutex(false)

    func enter() -> Bool {
        running.withLock { running in
            defer { running = true }
            return !running
        }
    }

    func leave() { running.withLock { $0 = false } }
}

extension HTTPField.Name {
    static let distillBackupTeacherLogRows = Self("x-distill-backup-teacher-log-rows")!
    static let distillBackupCacheEntries = Self("x-distill-backup-cache-entries")!
}
