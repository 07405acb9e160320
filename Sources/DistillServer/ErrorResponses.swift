import DistillAPI
import DistillCore

extension DistillError {
    /// How the error travels over HTTP: OpenAI's error shape, with its status.
    var apiError: APIError {
        func invalid(_ status: Int, _ code: String, param: String? = nil) -> APIError {
            APIError(status: status, type: "invalid_request_error", code: code, param: param, message: description)
        }
        switch self {
        case .teacher(let error): return error.apiError
        case .answerNotRecorded, .storageUnavailable:
            return APIError(status: 503, type: "server_error", code: "storage_unavailable", message: description)
        case .unknownScope: return invalid(404, "unknown_scope", param: "scope")
        case .ambiguousScope: return invalid(404, "ambiguous_scope", param: "scope")
        case .noTeacherAnswers: return invalid(404, "unknown_scope", param: "scope")
        case .notEnoughAnswers: return invalid(409, "not_enough_answers")
        case .unknownVersion: return invalid(404, "unknown_version")
        case .noVersions: return invalid(404, "no_versions", param: "scope")
        case .scopeRequired: return invalid(400, "scope_required", param: "scope")
        case .nothingToRollBackTo: return invalid(409, "nothing_to_roll_back_to")
        case .versionCannotServe: return invalid(409, "version_cannot_serve")
        case .versionRejected: return invalid(409, "version_rejected")
        case .invalidEmbedding: return invalid(400, "invalid_value", param: "embedding")
        }
    }
}
