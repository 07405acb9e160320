import Foundation

/// Any JSON value. Requests are kept in this form so that fields distill does not know about
/// still reach the upstream unchanged.
public enum JSONValue: Sendable, Hashable {
    case null
    case bool(Bool)
    case integer(Int64)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])
}

extension JSONValue {
    public subscript(key: String) -> JSONValue? {
        if case .object(let members) = self { return members[key] }
        return nil
    }

    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    public var boolValue: Bool? {
        if case .bool(let b) = self { return b }
        return nil
    }

    /// The value as a Double, for both integer and fractional numbers.
    public var doubleValue: Double? {
        switch self {
        case .integer(let i): Double(i)
        case .number(let d): d
        default: nil
        }
    }

    /// The value as an Int, for integers and for fractional numbers with no fraction (`2.0`).
    public var intValue: Int? {
        switch self {
        case .integer(let i): Int(exactly: i)
        case .number(let d): Int(exactly: d)
        default: nil
        }
    }

    public var arrayValue: [JSONValue]? {
        if case .array(let a) = self { return a }
        return nil
    }

    public var objectValue: [String: JSONValue]? {
        if case .object(let o) = self { return o }
        return nil
    }

    public var isNull: Bool { self == .null }

    /// The JSON type's name, for error messages.
    public var typeName: String {
        switch self {
        case .null: "null"
        case .bool: "boolean"
        case .integer, .number: "number"
        case .string: "string"
        case .array: "array"
        case .object: "object"
        }
    }
}

extension JSONValue: Codable {
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let s = try? container.decode(String.self) {
            self = .string(s)
        } else if let b = try? container.decode(Bool.self) {
            self = .bool(b)
        } else if let i = try? container.decode(Int64.self) {
            self = .integer(i)
        } else if let d = try? container.decode(Double.self) {
            self = .number(d)
        } else if let o = try? container.decode([String: JSONValue].self) {
            self = .object(o)
        } else if let a = try? container.decode([JSONValue].self) {
            self = .array(a)
        } else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "not a JSON value")
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let b): try container.encode(b)
        case .integer(let i): try container.encode(i)
        case .number(let d): try container.encode(d)
        case .string(let s): try container.encode(s)
        case .array(let a): try container.encode(a)
        case .object(let o): try container.encode(o)
        }
    }
}

extension JSONValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByFloatLiteral,
    ExpressibleByBooleanLiteral, ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral, ExpressibleByNilLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int64) { self = .integer(value) }
    public init(floatLiteral value: Double) { self = .number(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self = .object(Dictionary(elements, uniquingKeysWith: { _, last in last }))
    }
    public init(nilLiteral: ()) { self = .null }
}

extension JSONValue {
    /// Documents may nest arrays and objects this deep. Generous for any request (OpenAI's own
    /// structured-output schemas stop at 10 levels) and far below where anything would strain: the
    /// admin API wraps stored requests in a few more levels, and Foundation's decoder (cachectl)
    /// stops at 512.
    public static let maximumDepth = 128

    /// Parses one JSON document, in time proportional to its size. Bytes that are not UTF-8 are
    /// rejected before parsing, and so is nesting deeper than `maximumDepth`.
    public static func parse(_ data: Data) throws(JSONParseError) -> JSONValue {
        guard String(validating: data, as: UTF8.self) != nil else { throw .invalidUTF8 }
        let result = data.withUnsafeBytes { raw in
            Result(catching: { () throws(JSONParseError) -> JSONValue in
                var parser = JSONParser(bytes: raw.bindMemory(to: UInt8.self), maximumDepth: maximumDepth)
                return try parser.parseDocument()
            })
        }
        return try result.get()
    }

    /// Compact JSON with sorted keys: the same value always gives the same bytes.
    public func encoded() -> Data {
        var writer = JSONWriter()
        writer.write(self)
        return Data(writer.bytes)
    }

    public var encodedString: String {
        var writer = JSONWriter()
        writer.write(self)
        return String(decoding: writer.bytes, as: UTF8.self)
    }
}

public enum JSONParseError: Error, Equatable, CustomStringConvertible {
    case invalidUTF8
    case malformed(String)
    case tooDeep(limit: Int)

    public var description: String {
        switch self {
        case .invalidUTF8: "the body is not valid UTF-8"
        case .malformed(let detail): "the body is not valid JSON: \(detail)"
        case .tooDeep(let limit): "the body nests arrays and objects more than \(limit) deep"
        }
    }
}
