import DistillAPI

/// Why a teacher call gave no answer. Each case maps to the OpenAI-style error the client gets.
public enum TeacherError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The breaker is open after repeated failures; a probe may go after `retryAfter`.
    case circuitOpen(retryAfter: Duration)
    /// No connection could be made (after retries).
    case unreachable(detail: String)
    /// No answer within the read timeout or the request budget.
    case timedOut
    /// The upstream kept answering 429.
    case rateLimited(retryAfter: Duration?)
    /// The upstream kept answering with a server error.
    case upstreamFailure(status: Int)
    /// The upstream refused our credentials (401/403).
    case unauthorized(status: Int)
    /// The upstream refused the request itself (4xx): the client's request is at fault.
    case rejected(status: Int, error: ErrorBody?)
    /// The upstream answered 2xx with something that is not an OpenAI chat completion.
    case badResponse(detail: String)
    /// A stream broke off after it had started.
    case interrupted(detail: String)
    case cancelled

    /// The metrics label of this outcome.
    public var outcome: String {
        switch self {
        case .circuitOpen: "circuit_open"
        case .unreachable: "unreachable"
        case .timedOut: "timeout"
        case .rateLimited: "rate_limited"
        case .upstreamFailure: "upstream_error"
        case .unauthorized: "unauthorized"
        case .rejected: "rejected"
        case .badResponse: "bad_response"
        case .interrupted: "interrupted"
        case .cancelled: "cancelled"
        }
    }

    /// Every `outcome`, for metrics that exist before the first failure.
    public static let outcomes = [
        "circuit_open", "unreachable", "timeout", "rate_limited", "upstream_error", "unauthorized", "rejected",
        "bad_response", "interrupted", "cancelled",
    ]

    /// One line for the logs: what went wrong, without the upstream's message (it may quote the prompt).
    public var description: String {
        switch self {
        case .circuitOpen(let retryAfter):
            "the teacher's circuit breaker is open (it kept failing); the next try in \((retryAfter / .seconds(1)).rounded(.up).formatted())s"
        case .unreachable(let detail): "cannot reach the teacher at \(detail)"
        case .timedOut: "the teacher did not answer in time"
        case .rateLimited: "the teacher kept answering 429 (rate limited)"
        case .upstreamFailure(let status): "the teacher failed with HTTP \(status)"
        case .unauthorized(let status): "the teacher refused distill's credentials (HTTP \(status)); check teacher.api_key_env"
        case .rejected(let status, let error):
            "the teacher rejected the request (HTTP \(status)\(error?.error.code.map { ", code \($0)" } ?? ""))"
        case .badResponse(let detail): "the teacher's answer is not a chat completion: \(detail)"
        case .interrupted(let detail): "the teacher's stream broke off: \(detail)"
        case .cancelled: "the request was cancelled"
        }
    }

    /// The error the client receives.
    public var apiError: APIError {
        func upstream(_ status: Int, _ code: String, _ message: String, retryAfter: Duration? = nil) -> APIError {
            APIError(
                status: status, type: "upstream_error", code: code, message: message,
                retryAfterSeconds: retryAfter.map { max(1, Int(($0 / .seconds(1)).rounded(.up))) })
        }
        switch self {
        case .circuitOpen(let retryAfter):
            return upstream(
                503, "teacher_circuit_open", "The teacher is failing; calls are paused for a moment.",
                retryAfter: retryAfter)
        case .unreachable:
            return upstream(502, "teacher_unreachable", "The teacher could not be reached.")
        case .timedOut:
            return upstream(504, "teacher_timeout", "The teacher did not answer in time.")
        case .rateLimited(let retryAfter):
            return upstream(503, "teacher_rate_limited", "The teacher is rate limiting requests.", retryAfter: retryAfter)
        case .upstreamFailure(let status):
            return upstream(502, "teacher_error", "The teacher failed with HTTP \(status).")
        case .unauthorized(let status):
            return upstream(502, "teacher_unauthorized", "The teacher refused distill's credentials (HTTP \(status)).")
        case .rejected(let status, let error):
            return APIError(
                status: status, type: error?.error.type ?? "invalid_request_error", code: error?.error.code,
                param: error?.error.param,
                message: error?.error.message ?? "The teacher rejected the request (HTTP \(status)).")
        case .badResponse:
            return upstream(502, "teacher_bad_response", "The teacher's answer was not a valid chat completion.")
        case .interrupted:
            return upstream(502, "teacher_stream_interrupted", "The teacher's stream broke off before it finished.")
        case .cancelled:
            return APIError(status: 499, type: "cancelled", code: "cancelled", message: "The request was cancelled.")
        }
    }
}
