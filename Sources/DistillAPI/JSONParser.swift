/// A strict RFC 8259 parser from UTF-8 bytes to `JSONValue`, in one pass.
///
/// Decoding `JSONValue` through `Decodable` has to guess each value's type by trying them in turn,
/// and every failed guess builds an error carrying the coding path: a 1 MiB body of `[1,1,1,…]`
/// took 12 s of CPU and a 4 KiB body nested 511 deep took 2 s (debug build, docs/benchmarks.md,
/// "Reliability"). This parser reads each byte once, so a body costs time in proportion to its size,
/// and it bounds the nesting, so no document can exhaust the stack.
///
/// It reads every document as Foundation's decoder did, so that no request changes its meaning (or
/// its scope) with the parser: a number written as an integer within `Int64` (fraction zeros
/// allowed: `2`, `2.0`) or with an exponent that lands on one (`1e2`) is `.integer`, any other
/// finite number is `.number`, and one beyond `Double` (`1e400`) is an error. Of a key that
/// appears twice, the first value counts.
struct JSONParser {
    private let bytes: UnsafeBufferPointer<UInt8>
    private let maximumDepth: Int
    private var position = 0
    private var depth = 0

    init(bytes: UnsafeBufferPointer<UInt8>, maximumDepth: Int) {
        self.bytes = bytes
        self.maximumDepth = maximumDepth
    }

    /// The one value the bytes hold, with nothing but whitespace around it.
    mutating func parseDocument() throws(JSONParseError) -> JSONValue {
        let value = try parseValue()
        skipWhitespace()
        guard position == bytes.count else { throw fail("unexpected text after the JSON value") }
        return value
    }

    private mutating func parseValue() throws(JSONParseError) -> JSONValue {
        skipWhitespace()
        guard position < bytes.count else { throw fail("unexpected end of input") }
        switch bytes[position] {
        case UInt8(ascii: "{"): return try parseObject()
        case UInt8(ascii: "["): return try parseArray()
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): return try parseLiteral("true", .bool(true))
        case UInt8(ascii: "f"): return try parseLiteral("false", .bool(false))
        case UInt8(ascii: "n"): return try parseLiteral("null", .null)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try parseNumber()
        default: throw fail("unexpected character '\(printable(bytes[position]))'")
        }
    }

    private mutating func parseObject() throws(JSONParseError) -> JSONValue {
        try enterContainer()
        var members: [String: JSONValue] = [:]
        skipWhitespace()
        if consume(UInt8(ascii: "}")) {
            depth -= 1
            return .object(members)
        }
        while true {
            skipWhitespace()
            guard position < bytes.count, bytes[position] == UInt8(ascii: "\"") else { throw fail("expected a string key") }
            let key = try parseString()
            skipWhitespace()
            guard consume(UInt8(ascii: ":")) else { throw fail("expected ':' after an object key") }
            let value = try parseValue()
            if members[key] == nil { members[key] = value }
            skipWhitespace()
            if consume(UInt8(ascii: ",")) { continue }
            guard consume(UInt8(ascii: "}")) else { throw fail("expected ',' or '}' in an object") }
            depth -= 1
            return .object(members)
        }
    }

    private mutating func parseArray() throws(JSONParseError) -> JSONValue {
        try enterContainer()
        var elements: [JSONValue] = []
        skipWhitespace()
        if consume(UInt8(ascii: "]")) {
            depth -= 1
            return .array(elements)
        }
        while true {
            elements.append(try parseValue())
            skipWhitespace()
            if consume(UInt8(ascii: ",")) { continue }
            guard consume(UInt8(ascii: "]")) else { throw fail("expected ',' or ']' in an array") }
            depth -= 1
            return .array(elements)
        }
    }

    private mutating func enterContainer() throws(JSONParseError) {
        depth += 1
        guard depth <= maximumDepth else { throw .tooDeep(limit: maximumDepth) }
        position += 1
    }

    /// A string, its opening quote at `position`. The input was checked to be UTF-8 beforehand.
    private mutating func parseString() throws(JSONParseError) -> String {
        position += 1
        var utf8: [UInt8] = []
        var runStart = position
        while position < bytes.count {
            let byte = bytes[position]
            switch byte {
            case UInt8(ascii: "\""):
                let text = finishString(&utf8, run: runStart..<position)
                position += 1
                return text
            case UInt8(ascii: "\\"):
                utf8.append(contentsOf: bytes[runStart..<position])
                position += 1
                try parseEscape(into: &utf8)
                runStart = position
            case 0..<0x20:
                throw fail("a control character (U+\(hex(UInt16(byte)))) must be escaped in a string")
            default:
                position += 1
            }
        }
        throw fail("unterminated string")
    }

    private func finishString(_ utf8: inout [UInt8], run: Range<Int>) -> String {
        if utf8.isEmpty { return String(decoding: UnsafeBufferPointer(rebasing: bytes[run]), as: UTF8.self) }
        utf8.append(contentsOf: bytes[run])
        return String(decoding: utf8, as: UTF8.self)
    }

    /// One escape, after its backslash.
    private mutating func parseEscape(into utf8: inout [UInt8]) throws(JSONParseError) {
        guard position < bytes.count else { throw fail("unterminated string") }
        let byte = bytes[position]
        position += 1
        switch byte {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): utf8.append(byte)
        case UInt8(ascii: "b"): utf8.append(0x08)
        case UInt8(ascii: "f"): utf8.append(0x0C)
        case UInt8(ascii: "n"): utf8.append(0x0A)
        case UInt8(ascii: "r"): utf8.append(0x0D)
        case UInt8(ascii: "t"): utf8.append(0x09)
        case UInt8(ascii: "u"):
            var scalar = UInt32(try parseHex4())
            if (0xD800..<0xDC00).contains(scalar) {
                // A high surrogate must be followed by an escaped low one: together they are one scalar.
                guard consume(UInt8(ascii: "\\")), consume(UInt8(ascii: "u")) else { throw fail("a lone surrogate in a \\u escape") }
                let low = UInt32(try parseHex4())
                guard (0xDC00..<0xE000).contains(low) else { throw fail("a lone surrogate in a \\u escape") }
                scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
            } else if (0xDC00..<0xE000).contains(scalar) {
                throw fail("a lone surrogate in a \\u escape")
            }
            utf8.append(contentsOf: UTF8.encode(Unicode.Scalar(scalar)!)!)
        default:
            position -= 1
            throw fail("invalid escape '\\\(printable(byte))'")
        }
    }

    private mutating func parseHex4() throws(JSONParseError) -> UInt16 {
        guard position + 4 <= bytes.count else { throw fail("a \\u escape needs four hex digits") }
        var value: UInt16 = 0
        for _ in 0..<4 {
            let byte = bytes[position]
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw fail("a \\u escape needs four hex digits")
            }
            value = value << 4 | UInt16(digit)
            position += 1
        }
        return value
    }

    private mutating func parseNumber() throws(JSONParseError) -> JSONValue {
        let start = position
        _ = consume(UInt8(ascii: "-"))
        if consume(UInt8(ascii: "0")) {
            if position < bytes.count, isDigit(bytes[position]) { throw fail("a number cannot have a leading zero") }
        } else {
            guard try consumeDigits() else { throw fail("expected a digit") }
        }
        let integerEnd = position
        var fractionIsZero = true
        if consume(UInt8(ascii: ".")) {
            let fractionStart = position
            guard try consumeDigits() else { throw fail("expected a digit after '.'") }
            fractionIsZero = bytes[fractionStart..<position].allSatisfy { $0 == UInt8(ascii: "0") }
        }
        var hasExponent = false
        if consume(UInt8(ascii: "e")) || consume(UInt8(ascii: "E")) {
            hasExponent = true
            if !consume(UInt8(ascii: "+")) { _ = consume(UInt8(ascii: "-")) }
            guard try consumeDigits() else { throw fail("expected a digit in the exponent") }
        }
        if !hasExponent, fractionIsZero, let integer = Int64(text(start..<integerEnd)) { return .integer(integer) }
        let literal = text(start..<position)
        guard let double = Double(literal), double.isFinite else {
            position = start
            throw fail("the number \(literal.prefix(40)) is out of range")
        }
        if hasExponent, let integer = Int64(exactly: double) { return .integer(integer) }
        return .number(double)
    }

    private func text(_ range: Range<Int>) -> String {
        String(decoding: UnsafeBufferPointer(rebasing: bytes[range]), as: UTF8.self)
    }

    /// Consumes one or more digits; false if there is none.
    private mutating func consumeDigits() throws(JSONParseError) -> Bool {
        let start = position
        while position < bytes.count, isDigit(bytes[position]) { position += 1 }
        return position > start
    }

    private mutating func parseLiteral(_ word: StaticString, _ value: JSONValue) throws(JSONParseError) -> JSONValue {
        let count = word.utf8CodeUnitCount
        guard position + count <= bytes.count,
            UnsafeBufferPointer(rebasing: bytes[position..<position + count]).elementsEqual(
                UnsafeBufferPointer(start: word.utf8Start, count: count))
        else { throw fail("unexpected character '\(printable(bytes[position]))'") }
        position += count
        return value
    }

    private mutating func skipWhitespace() {
        while position < bytes.count {
            switch bytes[position] {
            case 0x20, 0x09, 0x0A, 0x0D: position += 1
            default: return
            }
        }
    }

    private mutating func consume(_ byte: UInt8) -> Bool {
        guard position < bytes.count, bytes[position] == byte else { return false }
        position += 1
        return true
    }

    private func isDigit(_ byte: UInt8) -> Bool { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) }

    private func printable(_ byte: UInt8) -> String {
        (0x21..<0x7F).contains(byte) ? String(UnicodeScalar(byte)) : "\\u{\(String(byte, radix: 16))}"
    }

    private func hex(_ value: UInt16) -> String {
        let digits = String(value, radix: 16, uppercase: true)
        return String(repeating: "0", count: 4 - digits.count) + digits
    }

    private func fail(_ problem: String) -> JSONParseError {
        .malformed("\(problem) at byte \(position)")
    }
}
