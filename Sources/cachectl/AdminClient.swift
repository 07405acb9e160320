import AsyncHTTPClient
import DistillAPI
import Foundation
import NIOCore
import NIOFoundationCompat
import NIOHTTP1

/// Talks to distilld's admin API over its Unix socket.
struct AdminClient {
    let socketPath: String

    /// A client that reports a dead socket at once instead of retrying the connection.
    private static let http: HTTPClient = {
        var configuration = HTTPClient.Configuration()
        configuration.timeout = .init(connect: .seconds(2), read: .seconds(60))
        configuration.connectionPool.retryConnectionEstablishment = false
        return HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    }()

    /// GET `path` and decode the JSON answer.
    func get<T: Decodable>(_ path: String, as type: T.Type) async throws -> T {
        try await send(.GET, path, body: nil, as: type)
    }

    /// Sends `body` (JSON) to `path` and decodes the JSON answer.
    func send<T: Decodable>(_ method: HTTPMethod, _ path: String, json body: some Encodable, as type: T.Type) async throws -> T {
        try await send(method, path, body: try JSONEncoder.admin.encode(body), as: type)
    }

    private func send<T: Decodable>(_ method: HTTPMethod, _ path: String, body: Data?, as type: T.Type) async throws -> T {
        guard FileManager.default.fileExists(atPath: socketPath) else {
            throw CachectlError.daemonNotRunning(socketPath: socketPath, detail: "no such file")
        }
        let encodedSocket = socketPath.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(.init(charactersIn: "-._~"))) ?? socketPath
        var request = HTTPClientRequest(url: "http+unix://\(encodedSocket)\(path)")
        request.method = method
        if let body {
            request.headers.add(name: "content-type", value: "application/json")
            request.body = .bytes(ByteBuffer(data: body))
        }
        let response: HTTPClientResponse
        do {
            response = try await Self.http.execute(request, timeout: .seconds(60))
        } catch {
            throw CachectlError.daemonNotRunning(socketPath: socketPath, detail: "\(error)")
        }
        let body = try await response.body.collect(upTo: 256 << 20)
        guard response.status.code / 100 == 2 else {
            let message = (try? JSONDecoder().decode(ErrorBody.self, from: Data(buffer: body)))?.error.message
            throw CachectlError.requestFailed(status: Int(response.status.code), message: message ?? "no details")
        }
        return try JSONDecoder.admin.decode(T.self, from: Data(buffer: body))
    }
}

enum CachectlError: Error, CustomStringConvertible {
    case daemonNotRunning(socketPath: String, detail: String)
    case requestFailed(status: Int, message: String)

    var description: String {
        switch self {
        case .daemonNotRunning(let path, _):
            "distilld is not running, or not listening on \(path) (start it, or pass --socket PATH)"
        case .requestFailed(let status, let message):
            "distilld answered \(status): \(message)"
        }
    }
}
