import AsyncHTTPClient
import DistillAPI
import Foundation
import NIOCore
import NIOFoundationCompat
import NIOHTTP1

/// Talks to distilld's admin API: over its Unix socket, or over TCP with the admin token.
struct AdminClient {
    enum Endpoint {
        case socket(path: String)
        /// distilld's TCP listener (`http://host:port`), which serves the admin API only to
        /// requests with `admin.token`.
        case http(baseURL: String, token: String?)
    }

    let endpoint: Endpoint

    /// A client that reports a dead socket at once instead of retrying the connection.
    private static let http = client(readTimeout: .seconds(60))
    /// For a backup, which may be silent for minutes while distilld copies and checks the store.
    private static let patientHTTP = client(readTimeout: .minutes(30))

    private static func client(readTimeout: TimeAmount) -> HTTPClient {
        var configuration = HTTPClient.Configuration()
        configuration.timeout = .init(connect: .seconds(2), read: readTimeout)
        configuration.connectionPool.retryConnectionEstablishment = false
        return HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    }

    /// GET `path` and decode the JSON answer.
    func get<T: Decodable>(_ path: String, as type: T.Type) async throws -> T {
        try await send(.GET, path, body: nil, as: type)
    }

    /// Sends `body` (JSON) to `path` and decodes the JSON answer.
    func send<T: Decodable>(_ method: HTTPMethod, _ path: String, json body: some Encodable, as type: T.Type) async throws -> T {
        try await send(method, path, body: try JSONEncoder.admin.encode(body), as: type)
    }

    private func send<T: Decodable>(_ method: HTTPMethod, _ path: String, body: Data?, as type: T.Type) async throws -> T {
        let response = try await execute(method, path, body: body, client: Self.http, timeout: .seconds(60))
        let body = try await response.body.collect(upTo: 256 << 20)
        return try JSONDecoder.admin.decode(T.self, from: Data(buffer: body))
    }

    /// GET `path` and write its body to `sink` as it arrives: for answers too large to hold.
    /// Returns the response's headers and the bytes written.
    func download(_ path: String, to sink: FileHandle) async throws -> (headers: HTTPHeaders, bytes: Int64) {
        let response = try await execute(.GET, path, body: nil, client: Self.patientHTTP, timeout: .hours(24))
        var bytes: Int64 = 0
        for try await buffer in response.body {
            try sink.write(contentsOf: Data(buffer: buffer))
            bytes += Int64(buffer.readableBytes)
        }
        return (response.headers, bytes)
    }

    /// Sends a request; anything but a 2xx is an error with distilld's message.
    private func execute(
        _ method: HTTPMethod, _ path: String, body: Data?, client: HTTPClient, timeout: TimeAmount
    ) async throws -> HTTPClientResponse {
        var request: HTTPClientRequest
        switch endpoint {
        case .socket(let socketPath):
            guard FileManager.default.fileExists(atPath: socketPath) else {
                throw CachectlError.daemonNotRunning(endpoint: endpoint, detail: "no such file")
            }
            let encodedSocket = socketPath.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(.init(charactersIn: "-._~"))) ?? socketPath
            request = HTTPClientRequest(url: "http+unix://\(encodedSocket)\(path)")
        case .http(let baseURL, let token):
            request = HTTPClientRequest(url: baseURL.trimmingSuffix("/") + path)
            if let token { request.headers.add(name: "authorization", value: "Bearer \(token)") }
        }
        request.method = method
        if let body {
            request.headers.add(name: "content-type", value: "application/json")
            request.body = .bytes(ByteBuffer(data: body))
        }
        let response: HTTPClientResponse
        do {
            response = try await client.execute(request, timeout: timeout)
        } catch {
            throw CachectlError.daemonNotRunning(endpoint: endpoint, detail: "\(error)")
        }
        guard response.status.code / 100 == 2 else {
            let body = try await response.body.collect(upTo: 1 << 20)
            let message = (try? JSONDecoder().decode(ErrorBody.self, from: Data(buffer: body)))?.error.message
            throw CachectlError.requestFailed(status: Int(response.status.code), message: message ?? "no details")
        }
        return response
    }
}

extension String {
    func trimmingSuffix(_ suffix: String) -> String {
        hasSuffix(suffix) ? String(dropLast(suffix.count)) : self
    }
}

enum CachectlError: Error, CustomStringConvertible {
    case daemonNotRunning(endpoint: AdminClient.Endpoint, detail: String)
    case requestFailed(status: Int, message: String)

    var description: String {
        switch self {
        case .daemonNotRunning(.socket(let path), _):
            "distilld is not running, or not listening on \(path) (start it, or pass --socket PATH or --url URL)"
        case .daemonNotRunning(.http(let baseURL, _), let detail):
            "cannot reach distilld at \(baseURL): \(detail)"
        case .requestFailed(let status, let message):
            "distilld answered \(status): \(message)"
        }
    }
}
