import DistillAPI
import DistillCore
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import SeededRandom
import Synchronization
import Teacher

/// Wraps every route: gives the request its id, turns any error into an OpenAI-style error
/// response, stamps `x-request-id` (and `x-distill-source` on completions), and records metrics.
struct DistillMiddleware: RouterMiddleware {
    typealias Context = DistillRequestContext
    let metrics: DistillMetrics

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        let started = ContinuousClock.now
        var context = context
        context.requestID = Self.requestID(from: request.headers[.requestID])
        var response: Response
        do {
            response = try await next(request, context)
        } catch {
            response = Self.errorResponse(for: error, request: request, context: context)
        }
        // No route sets these two: appended, not set (a set searches the fields to replace them).
        response.headers.append(HTTPField(name: .requestID, value: context.requestID))
        let route = context.endpointPath ?? "NotFound"
        var source = response.headers[.distillSource]
        if route == Routes.chatCompletions, source == nil {
            source = "none"
            response.headers.append(HTTPField(name: .distillSource, value: "none"))
        }
        metrics.recordRequest(route: route, status: Int(response.status.code), source: source, duration: .now - started)
        return response
    }

    /// The client's id when it is short and plain (it ends up in logs), else a fresh one.
    static func requestID(from header: String?) -> String {
        if let header, (1...64).contains(header.utf8.count),
            header.utf8.allSatisfy({ $0.isASCIIAlphanumeric || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".") })
        {
            return header
        }
        // Two draws as 32 hex digits, written digit by digit (`String(radix:)` and padding cost
        // more than the rest of this middleware).
        let (high, low) = idStream.withLock { ($0.next(), $0.next()) }
        var digits: [UInt8] = []
        digits.reserveCapacity(32)
        for word in [high, low] {
            for shift in stride(from: 60, through: 0, by: -4) { digits.append(hexDigits[Int(word >> UInt64(shift) & 0xF)]) }
        }
        return String(decoding: digits, as: UTF8.self)
    }

    /// Where fresh ids come from: a SplitMix64 stream seeded at random once per process, so no two
    /// ids of a process are the same (its state runs through all 2^64 values before repeating) and
    /// two processes' ids do not collide but by chance. A system random draw per id (two
    /// `getrandom` calls) cost a fiftieth of an exact cache hit. Ids are not secrets: they name a
    /// request in logs and in its completion's id.
    private static let idStream = Mutex(SplitMix64(seed: .random(in: 0 ... .max)))
    private static let hexDigits = Array("0123456789abcdef".utf8)

    static func errorResponse(for error: any Error, request: Request, context: Context) -> Response {
        let apiError: APIError
        switch error {
        case let error as APIError:
            apiError = error
        case let error as DistillError:
            apiError = error.apiError
        case let error as TeacherError:
            apiError = error.apiError
        case is NIOTooManyBytesError:
            apiError = APIError(
                status: 413, type: "invalid_request_error", code: "request_too_large",
                message: "The request body is larger than this server accepts.")
        case let error as HTTPError where error.status == .notFound:
            apiError = APIError(
                status: 404, type: "invalid_request_error", code: "unknown_url",
                message: "Unknown request URL: \(request.method) \(request.uri.path.prefix(200)).")
        case let error as HTTPError where error.status == .methodNotAllowed:
            apiError = APIError(
                status: 405, type: "invalid_request_error", code: "method_not_allowed",
                message: "\(request.method) is not allowed on \(request.uri.path.prefix(200)).")
        case let error as any HTTPResponseError:
            apiError = APIError(
                status: Int(error.status.code), type: "invalid_request_error", code: nil,
                message: error.status.reasonPhrase)
        default:
            context.logger.error(
                "unexpected error", metadata: ["distill.request_id": "\(context.requestID)", "distill.error": "\(error)"])
            apiError = APIError(
                status: 500, type: "server_error", code: "internal_error",
                message: "The server had an error while processing your request.")
        }
        return jsonResponse(apiError.body, status: .init(code: apiError.status), retryAfter: apiError.retryAfterSeconds)
    }
}

/// A JSON response with `body` encoded as the admin API encodes it.
func jsonResponse(_ body: some Encodable, status: HTTPResponse.Status = .ok, retryAfter: Int? = nil) -> Response {
    var headers: HTTPFields = [.contentType: "application/json"]
    if let retryAfter { headers[.retryAfter] = String(retryAfter) }
    let data = (try? JSONEncoder.admin.encode(body)) ?? Data("{}".utf8)
    return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
}

extension UInt8 {
    var isASCIIAlphanumeric: Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(self) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(self)
            || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(self)
    }
}
