import Foundation

/// A validated OpenAI chat-completions request. The whole body is kept (`body`), so that
/// fields distill does not interpret still reach the upstream unchanged.
public struct ChatRequest: Sendable, Equatable {
    public private(set) var body: [String: JSONValue]
    public let model: String
    public let messages: [ChatMessage]

    public var stream: Bool { body["stream"]?.boolValue ?? false }
    public var temperature: Double? { body["temperature"]?.doubleValue }
    /// How many choices the client asked for (`n`, default 1).
    public var choiceCount: Int { body["n"]?.intValue ?? 1 }
    public var wantsLogprobs: Bool { body["logprobs"]?.boolValue ?? false }
    /// Whether the client asked for a usage chunk at the end of a stream.
    public var wantsStreamUsage: Bool { body["stream_options"]?["include_usage"]?.boolValue ?? false }

    /// The last message with role `user`: the text a cache or a student answers.
    public var lastUserMessage: ChatMessage? { messages.last { $0.role == "user" } }

    /// Parses and validates a request body; every failure is a 400 with the offending parameter.
    public static func parse(_ data: Data) throws(APIError) -> ChatRequest {
        let json: JSONValue
        do {
            json = try JSONValue.parse(data)
        } catch {
            switch error {
            case .invalidUTF8:
                throw .invalidRequest("The request body is not valid UTF-8.", code: "invalid_encoding")
            case .malformed(let detail):
                throw .invalidRequest("The request body is not valid JSON: \(detail)", code: "invalid_json")
            case .tooDeep(let limit):
                throw .invalidRequest(
                    "The request body nests arrays and objects more than \(limit) levels deep.", code: "nesting_too_deep")
            }
        }
        return try ChatRequest(json: json)
    }

    public init(json: JSONValue) throws(APIError) {
        guard let body = json.objectValue else {
            throw .invalidRequest(
                "The request body must be a JSON object, not \(json.typeName).", code: "invalid_type")
        }
        guard let modelValue = body["model"], !modelValue.isNull else {
            throw .invalidRequest(
                "You must provide a model parameter.", code: "missing_required_parameter", param: "model")
        }
        guard let model = modelValue.stringValue, !model.isEmpty else {
            throw .invalidRequest(
                "'model' must be a non-empty string.", code: "invalid_type", param: "model")
        }
        guard !model.utf8.contains(0) else { throw Self.nulError(param: "model") }
        guard let messagesValue = body["messages"], !messagesValue.isNull else {
            throw .invalidRequest(
                "Missing required parameter: 'messages'.", code: "missing_required_parameter", param: "messages")
        }
        guard let rawMessages = messagesValue.arrayValue else {
            throw .invalidRequest(
                "'messages' must be an array, not \(messagesValue.typeName).", code: "invalid_type",
                param: "messages")
        }
        guard !rawMessages.isEmpty else {
            throw .invalidRequest(
                "'messages' must contain at least one message.", code: "invalid_value", param: "messages")
        }
        var messages: [ChatMessage] = []
        messages.reserveCapacity(rawMessages.count)
        for (index, raw) in rawMessages.enumerated() {
            messages.append(try ChatMessage(raw, param: "messages[\(index)]"))
        }
        try Self.validateParameters(body)
        self.body = body
        self.model = model
        self.messages = messages
    }

    /// Sets (or with nil, removes) a top-level field of the body.
    public mutating func setField(_ key: String, _ value: JSONValue?) {
        body[key] = value
    }

    /// The body as compact JSON.
    public func encodedBody() -> Data { JSONValue.object(body).encoded() }

    /// The store keeps the model and the message texts as SQLite TEXT, which ends at a NUL: a
    /// prompt or model name with one would be logged (and cached) cut short.
    static func nulError(param: String) -> APIError {
        .invalidRequest("'\(param)' must not contain NUL characters (U+0000).", code: "invalid_value", param: param)
    }

    private static func validateParameters(_ body: [String: JSONValue]) throws(APIError) {
        func check(_ key: String, _ isValid: (JSONValue) -> Bool, _ expected: String) throws(APIError) {
            guard let value = body[key], !value.isNull else { return }
            guard isValid(value) else {
                throw .invalidRequest(
                    "'\(key)' must be \(expected), not \(value.encodedString.prefix(64)).",
                    code: value.typeName == "number" || value.typeName == "array" ? "invalid_value" : "invalid_type",
                    param: key)
            }
        }
        try check("stream", { $0.boolValue != nil }, "a boolean")
        try check("logprobs", { $0.boolValue != nil }, "a boolean")
        try check("temperature", { ($0.doubleValue).map { (0...2).contains($0) } ?? false }, "a number from 0 to 2")
        try check("top_p", { ($0.doubleValue).map { (0...1).contains($0) } ?? false }, "a number from 0 to 1")
        try check("n", { ($0.intValue).map { (1...128).contains($0) } ?? false }, "an integer from 1 to 128")
        try check("top_logprobs", { ($0.intValue).map { (0...20).contains($0) } ?? false }, "an integer from 0 to 20")
        try check("max_tokens", { ($0.intValue).map { $0 >= 1 } ?? false }, "a positive integer")
        try check("max_completion_tokens", { ($0.intValue).map { $0 >= 1 } ?? false }, "a positive integer")
        try check(
            "stop",
            { value in
                if value.stringValue != nil { return true }
                guard let items = value.arrayValue, items.count <= 4 else { return false }
                return items.allSatisfy { $0.stringValue != nil }
            },
            "a string or an array of at most 4 strings")
        try check("stream_options", { $0.objectValue != nil }, "an object")
    }
}

/// One message of a chat request.
public struct ChatMessage: Sendable, Hashable {
    public static let roles: Set<String> = ["system", "developer", "user", "assistant", "tool", "function"]

    public let role: String
    /// The message's text: the string content, or its text parts joined by newlines.
    public let text: String
    /// The message exactly as sent.
    public let raw: JSONValue

    init(_ raw: JSONValue, param: String) throws(APIError) {
        guard let fields = raw.objectValue else {
            throw .invalidRequest("'\(param)' must be an object, not \(raw.typeName).", code: "invalid_type", param: param)
        }
        guard let role = fields["role"]?.stringValue else {
            throw .invalidRequest(
                "'\(param).role' is required and must be a string.", code: "invalid_type", param: "\(param).role")
        }
        guard Self.roles.contains(role) else {
            throw .invalidRequest(
                "'\(param).role' must be one of \(Self.roles.sorted().joined(separator: ", ")); got '\(role.prefix(32))'.",
                code: "invalid_value", param: "\(param).role")
        }
        let text: String
        switch fields["content"] ?? .null {
        case .string(let s):
            text = s
        case .array(let parts):
            text = try Self.text(ofParts: parts, param: "\(param).content")
        case .null:
            // Assistant turns that only call tools carry no content.
            guard role == "assistant" || role == "function" else {
                throw .invalidRequest(
                    "'\(param).content' is required for role '\(role)'.", code: "missing_required_parameter",
                    param: "\(param).content")
            }
            text = ""
        case let other:
            throw .invalidRequest(
                "'\(param).content' must be a string or an array of content parts, not \(other.typeName).",
                code: "invalid_type", param: "\(param).content")
        }
        guard !text.utf8.contains(0) else { throw ChatRequest.nulError(param: "\(param).content") }
        if role == "user", text.allSatisfy(\.isWhitespace), !Self.hasNonTextParts(fields["content"]) {
            throw .invalidRequest("'\(param).content' must not be empty.", code: "empty_content", param: "\(param).content")
        }
        self.role = role
        self.text = text
        self.raw = raw
    }

    private static func text(ofParts parts: [JSONValue], param: String) throws(APIError) -> String {
        var texts: [String] = []
        for (index, part) in parts.enumerated() {
            guard let type = part["type"]?.stringValue else {
                throw .invalidRequest(
                    "'\(param)[\(index)].type' is required and must be a string.", code: "invalid_type",
                    param: "\(param)[\(index)].type")
            }
            if type == "text" {
                guard let text = part["text"]?.stringValue else {
                    throw .invalidRequest(
                        "'\(param)[\(index)].text' must be a string.", code: "invalid_type", param: "\(param)[\(index)].text")
                }
                texts.append(text)
            }
        }
        return texts.joined(separator: "\n")
    }

    private static func hasNonTextParts(_ content: JSONValue?) -> Bool {
        content?.arrayValue?.contains { $0["type"]?.stringValue != "text" } ?? false
    }
}
