import DistillAPI
import Foundation
import Logging
import ServiceLifecycle
import Storage

/// How long the teacher log keeps prompts and answers: `purge` on request (`cachectl teacher-log
/// purge`), and, with a retention set, a sweep every hour as a service of the daemon's group, run
/// by the leader only when several nodes share the store (one sweep deletes for all).
///
/// What a purge loses: the exchanges are gone from every later training and holdout. A serving
/// student keeps serving (its weights are stored with its version), but the next candidate learns
/// only from what remains, and is judged against the serving one on a holdout drawn from it too.
public struct TeacherLogRetention: Service {
    let store: any DistillStore
    let students: Students?
    /// nil: the log keeps everything until purged by hand.
    let retention: TimeInterval?
    let clock: any WallClock
    let leadership: Leadership
    let logger: Logger

    public init(
        store: any DistillStore, students: Students?, retention: TimeInterval?, clock: any WallClock,
        leadership: Leadership = Leadership(), logger: Logger
    ) {
        self.store = store
        self.students = students
        self.retention = retention
        self.clock = clock
        self.leadership = leadership
        self.logger = logger
    }

    /// A scope key, or an unambiguous prefix of one with teacher answers.
    public func resolveScope(_ prefix: String) async throws(DistillError) -> String {
        try await Scope.resolve(prefix, amongTeacherLogScopesOf: store)
    }

    /// Deletes the exchanges created before `date` (of one scope, or all) and says, per scope,
    /// whether the serving student had learned from some of them.
    public func purge(scope: String?, createdBefore date: Date) async throws(DistillError) -> TeacherLogPurge {
        let purged: [String: (count: Int, oldestID: Int64)]
        do {
            purged = try await store.purgeTeacherLog(scope: scope, createdBefore: date)
        } catch {
            throw .storageUnavailable("\(error)")
        }
        let scopes = purged.sorted { $0.key < $1.key }.map { scope, rows in
            let trainedThrough = students?.trainedThrough(scope: scope)
            return TeacherLogPurge.Scope(
                scope: scope, deleted: rows.count, servingStudentLearnedFromThem: trainedThrough.map { rows.oldestID <= $0 } ?? false)
        }
        return TeacherLogPurge(deleted: scopes.reduce(0) { $0 + $1.deleted }, scopes: scopes)
    }

    /// The hourly sweep; only for a retention (without one there is nothing to run).
    public func run() async {
        guard retention != nil else {
            // Nothing to sweep, but a service of the daemon's group that returns early stops the daemon.
            try? await gracefulShutdown()
            return
        }
        while !Task.isShuttingDownGracefully, !Task.isCancelled {
            do {
                try await sweep()
            } catch {
                logger.error("the teacher log's retention sweep failed; trying again in an hour", metadata: ["distill.error": "\(error)"])
            }
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(3600)) }
        }
    }

    /// Deletes what is older than the retention, on the leader; a node that does not lead deletes
    /// nothing (nil).
    @discardableResult
    func sweep() async throws(DistillError) -> TeacherLogPurge? {
        guard let retention, leadership.isLeader else { return nil }
        let before = clock.now.addingTimeInterval(-retention)
        let purged = try await purge(scope: nil, createdBefore: before)
        if purged.deleted > 0 {
            logger.notice(
                "teacher log: exchanges past the retention deleted",
                metadata: ["distill.deleted": "\(purged.deleted)", "distill.before": "\(before.formatted(.iso8601))"])
        }
        return purged
    }
}
