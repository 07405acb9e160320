import Foundation

// The admin API (`/admin/...`), served on the Unix socket; cachectl speaks it.

/// `GET /admin/status`.
public struct DaemonStatus: Codable, Sendable, Equatable {
    enum CodingKeys: String, CodingKey {
        case version
        case listeners
        case store
        case teacher
        case startedAt = "started_at"
        case uptimeSeconds = "uptime_seconds"
        case kernels
    }

    public var version: String
    public var startedAt: Date
    public var uptimeSeconds: Double
    public var listeners: [String]
    public var store: StoreStatus
    public var teacher: TeacherStatus
    /// The kernels the encoder and the index run on, and why, e.g. "avx2 kernels on AMD EPYC (cpu features: …)";
    /// nil from a daemon older than this field.
    public var kernels: String?

    public init(
        version: String, startedAt: Date, uptimeSeconds: Double, listeners: [String], store: StoreStatus,
        teacher: TeacherStatus, kernels: String? = nil
    ) {
        self.version = version
        self.startedAt = startedAt
        self.uptimeSeconds = uptimeSeconds
        self.listeners = listeners
        self.store = store
        self.teacher = teacher
        self.kernels = kernels
    }

    public struct StoreStatus: Codable, Sendable, Equatable {
    enum CodingKeys: String, CodingKey {
        case path
        case sizeBytes = "size_bytes"
        case teacherLogRows = "teacher_log_rows"
    }

        public var path: String
        /// The database file plus its write-ahead log.
        public var sizeBytes: Int64
        public var teacherLogRows: Int64

        public init(path: String, sizeBytes: Int64, teacherLogRows: Int64) {
            self.path = path
            self.sizeBytes = sizeBytes
            self.teacherLogRows = teacherLogRows
        }
    }

    public struct TeacherStatus: Codable, Sendable, Equatable {
    enum CodingKeys: String, CodingKey {
        case baseURL = "base_url"
        case breakerState = "breaker_state"
        case consecutiveFailures = "consecutive_failures"
    }

        public var baseURL: String
        /// `closed` (calls flow), `open` (calls refused) or `half_open` (one probe allowed).
        public var breakerState: String
        public var consecutiveFailures: Int

        public init(baseURL: String, breakerState: String, consecutiveFailures: Int) {
            self.baseURL = baseURL
            self.breakerState = breakerState
            self.consecutiveFailures = consecutiveFailures
        }
    }
}

/// `GET /admin/stats`: counters since start-up.
public struct DaemonStats: Codable, Sendable, Equatable {
    enum CodingKeys: String, CodingKey {
        case requestsBySource = "requests_by_source"
        case errorsByStatus = "errors_by_status"
        case teacherCallsByOutcome = "teacher_calls_by_outcome"
        case teacherPromptTokens = "teacher_prompt_tokens"
        case teacherCompletionTokens = "teacher_completion_tokens"
    }

    /// Completed chat-completion requests by where the answer came from (`cache`, `student`, `teacher`).
    public var requestsBySource: [String: Int64]
    /// Chat-completion requests answered with an error, by HTTP status.
    public var errorsByStatus: [String: Int64]
    /// Teacher calls by outcome (`success`, `upstream_error`, `timeout`, …).
    public var teacherCallsByOutcome: [String: Int64]
    public var teacherPromptTokens: Int64
    public var teacherCompletionTokens: Int64

    public init(
        requestsBySource: [String: Int64], errorsByStatus: [String: Int64], teacherCallsByOutcome: [String: Int64],
        teacherPromptTokens: Int64, teacherCompletionTokens: Int64
    ) {
        self.requestsBySource = requestsBySource
        self.errorsByStatus = errorsByStatus
        self.teacherCallsByOutcome = teacherCallsByOutcome
        self.teacherPromptTokens = teacherPromptTokens
        self.teacherCompletionTokens = teacherCompletionTokens
    }
}

/// One teacher exchange, as `GET /admin/teacher-log` returns it.
public struct TeacherLogEntry: Codable, Sendable, Equatable {
    enum CodingKeys: String, CodingKey {
        case id
        case scope
        case model
        case messages
        case parameters
        case answer
        case streamed
        case createdAt = "created_at"
        case requestID = "request_id"
        case topLogprobs = "top_logprobs"
        case promptTokens = "prompt_tokens"
        case completionTokens = "completion_tokens"
        case latencyMilliseconds = "latency_ms"
    }

    public var id: Int64
    public var createdAt: Date
    public var requestID: String
    public var scope: String
    public var model: String
    /// The request's `messages`, as sent.
    public var messages: JSONValue
    /// The request's other fields (temperature, max_tokens, …), as sent.
    public var parameters: JSONValue
    public var answer: String
    public var topLogprobs: [TokenLogprob]?
    public var promptTokens: Int?
    public var completionTokens: Int?
    public var latencyMilliseconds: Double
    public var streamed: Bool

    public init(
        id: Int64, createdAt: Date, requestID: String, scope: String, model: String, messages: JSONValue,
        parameters: JSONValue, answer: String, topLogprobs: [TokenLogprob]?, promptTokens: Int?,
        completionTokens: Int?, latencyMilliseconds: Double, streamed: Bool
    ) {
        self.id = id
        self.createdAt = createdAt
        self.requestID = requestID
        self.scope = scope
        self.model = model
        self.messages = messages
        self.parameters = parameters
        self.answer = answer
        self.topLogprobs = topLogprobs
        self.promptTokens = promptTokens
        self.completionTokens = completionTokens
        self.latencyMilliseconds = latencyMilliseconds
        self.streamed = streamed
    }
}

/// `POST /admin/teacher-log/purge`: delete the exchanges older than a duration (of one scope, or all).
public struct TeacherLogPurgeRequest: Codable, Sendable, Equatable {
    public var scope: String?
    public var olderThanSeconds: Double

    public init(scope: String?, olderThanSeconds: Double) { (self.scope, self.olderThanSeconds) = (scope, olderThanSeconds) }

    enum CodingKeys: String, CodingKey {
        case scope
        case olderThanSeconds = "older_than_seconds"
    }
}

/// What a teacher-log purge deleted, and what it cost: the serving student of a scope that had
/// learned from deleted exchanges keeps serving, but its successors will not learn from them.
public struct TeacherLogPurge: Codable, Sendable, Equatable {
    public var deleted: Int
    public var scopes: [Scope]

    public struct Scope: Codable, Sendable, Equatable {
        public var scope: String
        public var deleted: Int
        public var servingStudentLearnedFromThem: Bool

        public init(scope: String, deleted: Int, servingStudentLearnedFromThem: Bool) {
            (self.scope, self.deleted, self.servingStudentLearnedFromThem) = (scope, deleted, servingStudentLearnedFromThem)
        }

        enum CodingKeys: String, CodingKey {
            case scope, deleted
            case servingStudentLearnedFromThem = "serving_student_learned_from_them"
        }
    }

    public init(deleted: Int, scopes: [Scope]) { (self.deleted, self.scopes) = (deleted, scopes) }
}

/// A page of the teacher log, oldest first. Ask again with `after=nextAfter` until it is nil.
public struct TeacherLogPage: Codable, Sendable, Equatable {
    enum CodingKeys: String, CodingKey {
        case entries
        case nextAfter = "next_after"
    }

    public var entries: [TeacherLogEntry]
    public var nextAfter: Int64?

    public init(entries: [TeacherLogEntry], nextAfter: Int64?) {
        self.entries = entries
        self.nextAfter = nextAfter
    }
}

extension JSONEncoder {
    /// The admin API's encoding: ISO-8601 dates, sorted keys.
    public static var admin: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }
}

extension JSONDecoder {
    /// The admin API's decoding: ISO-8601 dates.
    public static var admin: JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return decoder
    }
}

/// The version of distilld and cachectl.
public enum DistillVersion {
    public static let current = "0.1.0"
}
