import Foundation

/// A path of distilld's HTTP API, in the one form both sides use: the server registers
/// `pattern` as its route (`:name` marks a parameter), and a client fills the parameters in.
public struct APIPath: Sendable, Hashable, CustomStringConvertible {
    /// The route as a router takes it, e.g. `/admin/cache/entries/:id`.
    public let pattern: String

    public init(_ pattern: String) { self.pattern = pattern }

    public var description: String { pattern }

    /// Whether the path belongs to the admin API (the Unix socket's, or TCP's with `admin.token`).
    public var isAdmin: Bool { pattern.hasPrefix("/admin/") }

    /// The path with its `:name` segments replaced by `values`, in order, each percent-encoded as
    /// one path segment (a `/` in a value cannot reach another route).
    public func filled(_ values: String...) -> String {
        var remaining = values[...]
        let segments = pattern.split(separator: "/", omittingEmptySubsequences: false).map { segment -> Substring in
            guard segment.hasPrefix(":") else { return segment }
            precondition(!remaining.isEmpty, "\(pattern) takes more values than \(values)")
            return Substring(remaining.removeFirst().addingPercentEncoding(withAllowedCharacters: Self.segmentCharacters)!)
        }
        precondition(remaining.isEmpty, "\(pattern) takes fewer values than \(values)")
        return segments.joined(separator: "/")
    }

    /// RFC 3986's unreserved characters: everything else in a value is percent-encoded.
    static let segmentCharacters = CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~")
}

// The public API: OpenAI's routes, health and metrics.
extension APIPath {
    public static let chatCompletions = APIPath("/v1/chat/completions")
    public static let models = APIPath("/v1/models")
    public static let healthz = APIPath("/healthz")
    public static let readyz = APIPath("/readyz")
    public static let metrics = APIPath("/metrics")
}

// The admin API (docs/api.md lists what each does).
extension APIPath {
    public static let adminStatus = APIPath("/admin/status")
    public static let adminStats = APIPath("/admin/stats")
    public static let teacherLog = APIPath("/admin/teacher-log")
    public static let teacherLogPurge = APIPath("/admin/teacher-log/purge")
    public static let backup = APIPath("/admin/backup")

    public static let cacheEntries = APIPath("/admin/cache/entries")
    /// GET one entry; DELETE invalidates it.
    public static let cacheEntry = APIPath("/admin/cache/entries/:id")
    public static let cacheSearch = APIPath("/admin/cache/search")
    public static let cachePurge = APIPath("/admin/cache/purge")
    public static let cacheExport = APIPath("/admin/cache/export")
    public static let cacheImport = APIPath("/admin/cache/import")
    public static let cacheStats = APIPath("/admin/cache/stats")
    public static let cacheScope = APIPath("/admin/cache/scopes/:scope")

    public static let student = APIPath("/admin/student")
    public static let studentVersions = APIPath("/admin/student/versions")
    public static let studentPromote = APIPath("/admin/student/versions/:id/promote")
    public static let studentRollback = APIPath("/admin/student/rollback")
    public static let studentScope = APIPath("/admin/student/scopes/:scope")

    public static let distill = APIPath("/admin/distill")
    public static let distillRuns = APIPath("/admin/distill/runs")
}

/// The header names distilld adds to OpenAI's protocol.
public enum DistillHeader {
    /// Who answered: a `DistillSource` (`none` on an error).
    public static let source = "x-distill-source"
    /// A cache hit's similarity to the entry it served, `%.4f`.
    public static let similarity = "x-distill-similarity"
    /// The student's calibrated confidence, `%.4f`, when a student looked at the request.
    public static let confidence = "x-distill-confidence"
    /// The request's id: the client's if usable, else one distilld made.
    public static let requestID = "x-request-id"
    /// A request's cache directive (`refresh`: ask the teacher and replace the entry).
    public static let cache = "x-distill-cache"
    /// On `GET /admin/backup`: what the copy holds.
    public static let backupTeacherLogRows = "x-distill-backup-teacher-log-rows"
    public static let backupCacheEntries = "x-distill-backup-cache-entries"
}

/// Who answered a chat completion, as `x-distill-source` says.
public enum DistillSource: String, Codable, CaseIterable, Sendable {
    case cache, student, teacher
}

/// The body of `GET /healthz` (`ok`) and of `GET /readyz` (`ready`, or `not_ready` with reasons, as a 503).
public struct HealthStatus: Codable, Sendable, Equatable {
    public var status: String
    public var reasons: [String]?

    public init(status: String, reasons: [String]? = nil) {
        self.status = status
        self.reasons = reasons
    }
}
