import Foundation

/// An error as OpenAI's API reports it: `{"error":{"message","type","param","code"}}`, with the
/// HTTP status it travels with.
public struct APIError: Error, Sendable, Equatable, CustomStringConvertible {
    public var status: Int
    public var type: String
    public var code: String?
    public var param: String?
    public var message: String
    /// Seconds a client should wait before trying again (`Retry-After`), where that is known.
    public var retryAfterSeconds: Int?

    public init(
        status: Int, type: String, code: String?, param: String? = nil, message: String,
        retryAfterSeconds: Int? = nil
    ) {
        self.status = status
        self.type = type
        self.code = code
        self.param = param
        self.message = message
        self.retryAfterSeconds = retryAfterSeconds
    }

    public var body: ErrorBody {
        ErrorBody(error: .init(message: message, type: type, param: param, code: code))
    }

    public var description: String { "\(status) \(code ?? type): \(message)" }

    /// 400: the request itself is wrong.
    public static func invalidRequest(_ message: String, code: String, param: String? = nil) -> APIError {
        APIError(status: 400, type: "invalid_request_error", code: code, param: param, message: message)
    }
}

/// The JSON body of an error response.
public struct ErrorBody: Codable, Sendable, Equatable {
    public struct Detail: Codable, Sendable, Equatable {
        public var message: String
        public var type: String
        public var param: String?
        public var code: String?

        public init(message: String, type: String, param: String?, code: String?) {
            self.message = message
            self.type = type
            self.param = param
            self.code = code
        }

        // param and code are always present, as null when unknown, as OpenAI sends them.
        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(message, forKey: .message)
            try container.encode(type, forKey: .type)
            try container.encode(param, forKey: .param)
            try container.encode(code, forKey: .code)
        }
    }

    public var error: Detail

    public init(error: Detail) { self.error = error }
}

extension ServerSentEvent {
    /// An error as OpenAI streams it, after the response has started: `data: {"error":{…}}`.
    public init(error: APIError) {
        self.init(data: String(decoding: (try? JSONEncoder().encode(error.body)) ?? Data(), as: UTF8.self))
    }
}
