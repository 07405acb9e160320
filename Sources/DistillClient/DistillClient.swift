import AsyncHTTPClient
import DistillAPI
import Foundation
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import NIOPosix

/// A typed client of distilld: the public API (OpenAI's chat completions and models, health,
/// metrics) and the admin API, over TCP or the Unix socket. Every failure is a
/// `DistillClientError`.
public struct DistillClient: Sendable {
    /// Where distilld listens.
    public enum Address: Sendable, Hashable, CustomStringConvertible {
        /// The TCP listener, `http://HOST:PORT`.
        case tcp(String)
        /// The Unix socket, by its path.
        case unix(String)

        /// As distilld names its listeners: `http://HOST:PORT` or `unix:PATH`.
        public var description: String {
            switch self {
            case .tcp(let url): url
            case .unix(let path): "unix:\(path)"
            }
        }
    }

    public let address: Address
    /// Sent as `Authorization: Bearer` on the public API (distilld's `server.api_keys`; the key is the tenant).
    public var apiKey: String?
    /// Sent as `Authorization: Bearer` on the admin API (`admin.token`; only TCP needs it).
    public var adminToken: String?
    /// The longest a call may take, its whole answer included (a backup has no limit but a day).
    public var timeout: Duration
    private let http: HTTPClient
    private let patientHTTP: HTTPClient

    /// `http` is the caller's to configure and shut down (the replay sizes its pool); by default
    /// the client uses its own, which report an unreachable daemon at once.
    public init(
        _ address: Address, apiKey: String? = nil, adminToken: String? = nil, timeout: Duration = .seconds(60),
        http: HTTPClient? = nil
    ) {
        if case .tcp(let url) = address, url.hasSuffix("/") {
            self.address = .tcp(String(url.dropLast()))
        } else {
            self.address = address
        }
        self.apiKey = apiKey
        self.adminToken = adminToken
        self.timeout = timeout
        self.http = http ?? Self.quickHTTP
        self.patientHTTP = http ?? Self.patientHTTP
    }

    private static let quickHTTP = makeHTTPClient()
    /// For a backup, silent for minutes while distilld copies and checks the store.
    private static let patientHTTP = makeHTTPClient(readTimeout: .seconds(30 * 60))

    /// An HTTP client as the default ones are made, for callers that need more connections at
    /// once (a load generator): it gives up on a connection at once when nothing listens
    /// (AsyncHTTPClient would otherwise retry it until the deadline), and on an answer silent for
    /// `readTimeout`. The caller shuts it down.
    public static func makeHTTPClient(readTimeout: Duration = .seconds(60), connections: Int = 8) -> HTTPClient {
        var configuration = HTTPClient.Configuration()
        configuration.timeout = .init(connect: .seconds(2), read: timeAmount(readTimeout))
        configuration.connectionPool.retryConnectionEstablishment = false
        configuration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = connections
        // distilld closes a connection idle for its header timeout (10 s by default); a pooled one
        // reused just as the server closes it fails ("I/O on closed channel"), so idle ones go first.
        configuration.connectionPool.idleTimeout = .seconds(4)
        return HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    }

    // MARK: - Requests

    /// What one call sends.
    struct Call {
        var method: HTTPMethod
        /// A filled-in `APIPath`.
        var path: String
        var query: KeyValuePairs<String, String?> = [:]
        var body: Data?
        var headers: [String: String] = [:]
        var patient = false
        /// Statuses besides 2xx that are this endpoint's answer, not an error (readyz's 503).
        var alsoAnswers: [UInt] = []

        var isAdmin: Bool { path.hasPrefix("/admin/") }

        /// The path and its query, every value percent-encoded; nil values are left out.
        var target: String {
            let items = query.compactMap { name, value in
                value.map { "\(name)=\($0.addingPercentEncoding(withAllowedCharacters: Self.queryValueCharacters)!)" }
            }
            return items.isEmpty ? path : path + "?" + items.joined(separator: "&")
        }

        static let queryValueCharacters = CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~")
    }

    /// Sends `call` and returns distilld's answer if it is a success (2xx); anything else is
    /// thrown as the error distilld sent.
    func execute(_ call: Call) async throws -> HTTPClientResponse {
        var request: HTTPClientRequest
        switch address {
        case .tcp(let url):
            request = HTTPClientRequest(url: url + call.target)
        case .unix(let path):
            guard FileManager.default.fileExists(atPath: path) else { throw DistillClientError.socketMissing(path: path) }
            // AsyncHTTPClient's own spelling of a socket address: the path, percent-encoded, as the host.
            guard let url = URL(httpURLWithSocketPath: path, uri: call.target) else {
                throw DistillClientError.connectionFailed(address: address, reason: "the socket path cannot be put in a URL")
            }
            request = HTTPClientRequest(url: url.absoluteString)
        }
        request.method = call.method
        if let token = call.isAdmin ? adminToken : apiKey {
            request.headers.add(name: "authorization", value: "Bearer \(token)")
        }
        for (name, value) in call.headers { request.headers.replaceOrAdd(name: name, value: value) }
        if let body = call.body {
            request.headers.add(name: "content-type", value: "application/json")
            request.body = .bytes(ByteBuffer(data: body))
        }
        let response: HTTPClientResponse
        do {
            response = try await (call.patient ? patientHTTP : http).execute(
                request, timeout: call.patient ? .hours(24) : Self.timeAmount(timeout))
        } catch {
            throw DistillClientError.connectionFailed(address: address, reason: Self.reason(error))
        }
        guard (200..<300).contains(response.status.code) || call.alsoAnswers.contains(response.status.code) else {
            throw await failure(response, call: call)
        }
        return response
    }

    /// A JSON answer, decoded.
    func json<T: Decodable>(_ call: Call, as type: T.Type) async throws -> T {
        let response = try await execute(call)
        return try decode(T.self, status: response.status, body: try await collect(response))
    }

    /// A JSON answer to a call with a JSON body.
    func json<T: Decodable>(_ method: HTTPMethod, _ path: String, body: some Encodable, as type: T.Type) async throws -> T {
        try await json(Call(method: method, path: path, body: try JSONEncoder.admin.encode(body)), as: T.self)
    }

    /// The whole body of an answer (at most 256 MiB: a page of a cache export with its vectors).
    func collect(_ response: HTTPClientResponse) async throws -> Data {
        do {
            return Data(buffer: try await response.body.collect(upTo: 256 << 20))
        } catch {
            throw DistillClientError.connectionFailed(address: address, reason: Self.reason(error))
        }
    }

    func decode<T: Decodable>(_ type: T.Type, status: HTTPResponseStatus, body: Data) throws -> T {
        do {
            return try JSONDecoder.admin.decode(T.self, from: body)
        } catch {
            throw DistillClientError.unexpectedResponse(
                status: Int(status.code), detail: "not a \(T.self): \(String(decoding: body.prefix(200), as: UTF8.self))")
        }
    }

    /// The error an unsuccessful answer carries.
    private func failure(_ response: HTTPClientResponse, call: Call) async -> DistillClientError {
        let status = Int(response.status.code)
        let body = (try? await response.body.collect(upTo: 1 << 20)).map { Data(buffer: $0) } ?? Data()
        guard let detail = try? JSONDecoder().decode(ErrorBody.self, from: body).error else {
            return .unexpectedResponse(status: status, detail: String(decoding: body.prefix(300), as: UTF8.self))
        }
        // Over TCP, distilld without admin.token has no admin routes: every one is an unknown URL.
        if case .tcp(let url) = address, call.isAdmin, status == 404, detail.code == "unknown_url" {
            let servesAdminAPI = call.path == APIPath.adminStatus.pattern ? false : await servesAdminAPI()
            if !servesAdminAPI { return .noAdminAPI(url: url) }
        }
        return .daemon(
            APIError(
                status: status, type: detail.type, code: detail.code, param: detail.param, message: detail.message,
                retryAfterSeconds: response.headers.first(name: "retry-after").flatMap { Int($0) }))
    }

    /// Whether distilld has admin routes here (`/admin/status` is always one).
    private func servesAdminAPI() async -> Bool {
        do {
            _ = try await status()
            return true
        } catch DistillClientError.noAdminAPI {
            return false
        } catch {
            return true
        }
    }

    /// What went wrong on the way, in a few words.
    static func reason(_ error: any Error) -> String {
        switch error {
        case let error as IOError:
            return String(cString: strerror(error.errnoCode)).lowercased()
        case let error as NIOConnectionError:
            return error.connectionErrors.first.map { reason($0.error) } ?? "connection failed"
        case let error as HTTPClientError:
            switch error {
            case .connectTimeout: return "no connection within 2 s"
            case .deadlineExceeded: return "no complete answer in time"
            case .readTimeout: return "the answer stalled"
            case .remoteConnectionClosed: return "the connection closed before the whole answer came"
            case .cancelled: return "cancelled"
            default: return "\(error)"
            }
        default:
            return "\(error)"
        }
    }

    static func timeAmount(_ duration: Duration) -> TimeAmount {
        let (seconds, attoseconds) = duration.components
        return .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}
