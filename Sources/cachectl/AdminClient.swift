import AsyncHTTPClient
import DistillAPI
import Foundation
import NIOCore
import NIOFoundationCompat

/// Talks to distilld's admin API over its Unix socket.
struct AdminClient {
    let socketPath: String

    /// GET `path` and decode the JSON answer.
    func get<T: Decodable>(_ path: String, as type: T.Type) async throws -> T {
        let encodedSocket = socketPath.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(.init(charactersIn: "-._~"))) ?? socketPath
        let request = HTTPClientRequest(url: "http+unix://\(encodedSocket)\(path)")
        let response: HTTPClientResponse
        do {
            response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        } catch {
            throw CachectlError.daemonNotRunning(socketPath: socketPath, detail: "\(error)")
        }
        let body = try await response.body.collect(upTo: 256 << 20)
        guard response.status == .ok else {
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
