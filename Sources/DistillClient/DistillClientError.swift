import DistillAPI
import Foundation

/// Why a call to distilld failed: distilld said no (`fromDaemon`), or the call never got an
/// answer it could read (this side, or the way to distilld).
public enum DistillClientError: Error, Sendable, CustomStringConvertible {
    /// distilld answered with an error: its HTTP status and OpenAI-shaped error.
    case daemon(APIError)
    /// distilld sent an error event in a stream that had begun (no `[DONE]` follows). The
    /// `APIError`'s status is the response's (200): the failure came after it.
    case streamError(APIError)
    /// distilld's TCP listener serves no admin API: it has no `admin.token` (its admin routes
    /// are then on the Unix socket only, and TCP answers 404).
    case noAdminAPI(url: String)
    /// distilld answered with something this endpoint does not return.
    case unexpectedResponse(status: Int, detail: String)
    /// Nothing at the socket path: distilld does not run there (or listens elsewhere).
    case socketMissing(path: String)
    /// The connection failed, or broke before the whole answer came (refused, timed out, closed).
    case connectionFailed(address: DistillClient.Address, reason: String)

    /// Whether distilld itself answered (as opposed to no answer at all).
    public var fromDaemon: Bool {
        switch self {
        case .daemon, .streamError, .noAdminAPI, .unexpectedResponse: true
        case .socketMissing, .connectionFailed: false
        }
    }

    /// distilld's error, when it answered with one.
    public var apiError: APIError? {
        switch self {
        case .daemon(let error), .streamError(let error): error
        default: nil
        }
    }

    public var description: String {
        switch self {
        case .daemon(let error):
            "distilld answered \(error.status) \(error.code ?? error.type): \(error.message)"
        case .streamError(let error):
            "distilld ended the stream with an error, \(error.code ?? error.type): \(error.message)"
        case .noAdminAPI(let url):
            "distilld at \(url) serves no admin API over TCP: it has no admin.token configured "
                + "(set one, or use its Unix socket)"
        case .unexpectedResponse(let status, let detail):
            "distilld answered \(status), not as expected: \(detail)"
        case .socketMissing(let path):
            "distilld is not running, or not listening on \(path): no socket there"
        case .connectionFailed(let address, let reason):
            "cannot reach distilld at \(address): \(reason)"
        }
    }
}
