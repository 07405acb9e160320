import Foundation
import SeededRandom

/// The fuzz tests' only source of randomness is SplitMix64, so every run draws the
/// same inputs and a failure reproduces from its seed.

extension SplitMix64 {
    mutating func chance(_ probability: Double) -> Bool { Double.random(in: 0..<1, using: &self) < probability }

    mutating func pick<T>(_ choices: [T]) -> T { choices.randomElement(using: &self)! }

    mutating func upTo(_ bound: Int) -> Int { Int.random(in: 0...bound, using: &self) }
}

/// How many inputs each fuzz test runs: `FUZZ_ITERATIONS` (for a long run), else the test's own
/// count, which keeps `make test` to seconds.
func fuzzIterations(default count: Int) -> Int {
    ProcessInfo.processInfo.environment["FUZZ_ITERATIONS"].flatMap(Int.init) ?? count
}

/// The seeds of a test's `count` inputs: from `FUZZ_SEED` (else 1) on, one per input.
func fuzzSeeds(_ count: Int) -> some Sequence<UInt64> {
    let first = ProcessInfo.processInfo.environment["FUZZ_SEED"].flatMap(UInt64.init) ?? 1
    return (0..<UInt64(count)).lazy.map { first &+ $0 }
}

/// A failing input, short enough for a test report.
func describe(_ bytes: some Collection<UInt8>) -> String {
    let text = String(decoding: bytes.prefix(300), as: UTF8.self)
    return bytes.count > 300 ? "\(text)… (\(bytes.count) bytes)" : text
}

/// Generates hostile JSON text: documents shaped like chat requests (or like a teacher's answers)
/// with edge-case leaves — escapes of NUL and lone surrogates, numbers beyond Int64 and Double,
/// duplicate keys, wrong types, deep nesting — then, often, byte-level damage on top.
struct HostileJSON {
    var random: SplitMix64

    /// String bodies (already JSON-escaped) that parsers get wrong.
    static let strings = [
        "", " ", "hello", "where is my card?", "\\u0000", "a\\u0000b", "\\ud800", "\\udc00\\ud800", "\\uD83D\\uDE00",
        "\\\"", "\\\\", "\\/", "\\b\\f\\n\\r\\t", "naïve café 🙂", "\u{202E}rtl\u{202C}", "e\u{301}\u{301}\u{301}", "\u{FEFF}bom",
        "[SEP][CLS]", "\\u00e9", "\\uFFFF", "\\uDBFF\\uDFFF", "%00%2e%2e%2f", "../../etc/passwd", "data: [DONE]",
        "\u{0085}\u{2028}\u{2029}", "    \\t\\n  ",
    ]
    /// Strings every part of a request may hold (NUL and lone surrogates are refused).
    static let validStrings = [
        "hello", "where is my card?", "\\\"", "\\\\", "\\/", "a\\b\\f\\n\\r\\t", "naïve café 🙂", "\u{202E}rtl\u{202C}",
        "e\u{301}\u{301}", "\u{FEFF}bom", "[SEP][CLS]", "\\u00e9", "\\uFFFF", "\\uDBFF\\uDFFF", "\\uD83D\\uDE00", "../../etc/passwd",
    ]
    /// Number literals, valid and not, in and beyond range.
    static let numbers = [
        "0", "-0", "1", "2", "128", "129", "-1", "0.5", "2.0", "1e2", "1E-2", "1.5e308", "1e309", "-1e400", "1e-400",
        "9223372036854775807", "9223372036854775808", "-9223372036854775809", "18446744073709551616",
        "123456789012345678901234567890", "0.1e1", "01", "1.", ".5", "-", "+1", "NaN", "Infinity", "0x10",
    ]
    static let requestKeys = [
        "model", "messages", "stream", "temperature", "top_p", "n", "stop", "logprobs", "top_logprobs", "max_tokens",
        "max_completion_tokens", "stream_options", "tools", "user", "metadata", "seed", "response_format", "x",
    ]
    static let roles = ["user", "system", "assistant", "developer", "tool", "function", "USER", "", "bot"]

    init(seed: UInt64) { random = SplitMix64(seed: seed) }

    // MARK: - Requests

    /// Whether the document being generated keeps to what a request may hold (with hostile but
    /// valid text): half of them do, so that the parser's acceptance path is explored as well.
    private var plausible = false

    /// True with probability `p`, unless the document is plausible.
    private mutating func hostile(_ p: Double) -> Bool { !plausible && random.chance(p) }

    /// One input for the request parser.
    mutating func request() -> [UInt8] {
        var text: String
        switch random.upTo(9) {
        case 0: text = value(depth: 0)
        case 1: text = nesting(depth: random.pick([20, 127, 128, 129, 300, 511, 512, 513, 2000]))
        default: text = chatRequest()
        }
        var bytes = Array(text.utf8)
        if random.chance(0.3) { damage(&bytes) }
        return bytes
    }

    mutating func chatRequest() -> String {
        plausible = random.chance(0.5)
        defer { plausible = false }
        var members: [String] = []
        if !hostile(0.1) { members.append(#""model":\#(hostile(0.15) ? value(depth: 2) : string())"#) }
        if !hostile(0.05) { members.append(#""messages":\#(hostile(0.1) ? value(depth: 2) : messages())"#) }
        for _ in 0..<random.upTo(4) {
            let key = random.pick(Array(Self.requestKeys.dropFirst(2)))
            members.append("\(quoted(key)):\(hostile(0.8) ? parameterValue() : validParameter(key))")
        }
        if hostile(0.05) { members.append(#""messages":[]"#) }  // a duplicate key
        members.shuffle(using: &random)
        return "{" + members.joined(separator: random.chance(0.9) ? "," : " , \n") + "}"
    }

    mutating func messages() -> String {
        let count = random.chance(0.002) ? random.pick([500, 5000]) : 1 + random.upTo(4)
        return "[" + (0..<count).map { _ in message() }.joined(separator: ",") + "]"
    }

    mutating func message() -> String {
        var members: [String] = []
        let role = hostile(0.1) ? value(depth: 1) : quoted(plausible ? random.pick(Array(Self.roles.prefix(6))) : random.pick(Self.roles))
        if !hostile(0.05) { members.append(#""role":\#(role)"#) }
        if !hostile(0.1) {
            let content: String
            switch random.upTo(5) {
            case 0: content = "[" + (0..<random.upTo(3)).map { _ in contentPart() }.joined(separator: ",") + "]"
            case 1 where !plausible: content = value(depth: 1)
            default: content = string()
            }
            members.append(#""content":\#(content)"#)
        }
        if random.chance(0.1) { members.append(#""name":\#(string())"#) }
        if random.chance(0.05) { members.append(#""tool_calls":\#(value(depth: 2))"#) }
        return "{" + members.shuffled(using: &random).joined(separator: ",") + "}"
    }

    mutating func contentPart() -> String {
        switch random.upTo(3) {
        case 0: #"{"type":"image_url","image_url":{"url":\#(string())}}"#
        case 1 where !plausible: value(depth: 1)
        default: #"{"type":"text","text":\#(hostile(0.1) ? value(depth: 0) : string())}"#
        }
    }

    /// Any value for a parameter: often of the wrong type or out of range.
    mutating func parameterValue() -> String {
        switch random.upTo(4) {
        case 0: number()
        case 1: random.pick(["true", "false", "null"])
        case 2: #"{"include_usage":\#(random.pick(["true", "1", "null"]))}"#
        default: value(depth: 1)
        }
    }

    /// A value the parameter `key` accepts.
    mutating func validParameter(_ key: String) -> String {
        switch key {
        case "stream", "logprobs": random.pick(["true", "false", "null"])
        case "temperature": random.pick(["0", "0.7", "1", "2.0", "1e0"])
        case "top_p": random.pick(["0", "0.5", "1"])
        case "n": random.pick(["1", "2", "128", "1.0"])
        case "top_logprobs": random.pick(["0", "5", "20"])
        case "max_tokens", "max_completion_tokens": random.pick(["1", "4096", "9223372036854775807"])
        case "stop": random.pick(["\"\\n\"", "[]", #"["a","b","c","d"]"#])
        case "stream_options": #"{"include_usage":true}"#
        default: value(depth: 1)
        }
    }

    // MARK: - Values

    /// Any JSON value (as text), at most a few levels deep.
    mutating func value(depth: Int) -> String {
        switch random.upTo(depth >= 3 ? 3 : 5) {
        case 0: return string()
        case 1: return number()
        case 2: return random.pick(["true", "false", "null"])
        case 3: return random.chance(0.5) ? "[]" : "{}"
        case 4: return "[" + (0..<random.upTo(4)).map { _ in value(depth: depth + 1) }.joined(separator: ",") + "]"
        default:
            return "{" + (0..<random.upTo(4)).map { _ in "\(string()):\(value(depth: depth + 1))" }.joined(separator: ",") + "}"
        }
    }

    mutating func string() -> String {
        let pool = plausible ? Self.validStrings : Self.strings
        var body = random.pick(pool)
        if random.chance(0.2) { body += random.pick(pool) }
        if random.chance(0.03) { body = String(repeating: body.isEmpty ? "x" : body, count: random.pick([100, 3000])) }
        return "\"" + body + "\""
    }

    mutating func number() -> String { random.pick(Self.numbers) }

    func quoted(_ text: String) -> String { "\"" + text + "\"" }

    /// A value nested `depth` levels deep in arrays and objects, inside an otherwise valid request.
    mutating func nesting(depth: Int) -> String {
        var open = "", close = ""
        for _ in 0..<depth {
            if random.chance(0.5) {
                open += "["
                close = "]" + close
            } else {
                open += #"{"a":"#
                close = "}" + close
            }
        }
        return #"{"model":"m","messages":[{"role":"user","content":"hi"}],"metadata":\#(open)1\#(close)}"#
    }

    // MARK: - Damage

    /// Bytes that break parsers: structure, escapes, and invalid or overlong UTF-8.
    static let tokens: [[UInt8]] = [
        Array("{".utf8), Array("}".utf8), Array("[".utf8), Array("]".utf8), Array("\"".utf8), Array(",".utf8),
        Array(":".utf8), Array("\\".utf8), Array("\\u".utf8), Array("\\u0000".utf8), Array("\\ud800".utf8),
        Array("null".utf8), Array("1e999".utf8), Array("-".utf8), [0x00], [0xFF], [0xC0, 0x80], [0xED, 0xA0, 0x80],
        [0xF4, 0x90, 0x80, 0x80], [0xE2, 0x82], [0x0A], [0x0D], [0x09], [0x7F],
    ]

    /// One to four mutations: flip, insert, delete, duplicate, truncate.
    mutating func damage(_ bytes: inout [UInt8]) {
        for _ in 0...random.upTo(3) {
            let position = bytes.isEmpty ? 0 : random.upTo(bytes.count - 1)
            switch random.upTo(5) {
            case 0 where !bytes.isEmpty:
                bytes[position] ^= UInt8(1) << UInt8(random.upTo(7))
            case 1:
                bytes.insert(contentsOf: random.pick(Self.tokens), at: min(position, bytes.count))
            case 2 where !bytes.isEmpty:
                bytes.removeSubrange(position..<min(bytes.count, position + 1 + random.upTo(8)))
            case 3 where !bytes.isEmpty:
                let end = min(bytes.count, position + 1 + random.upTo(16))
                bytes.insert(contentsOf: bytes[position..<end], at: end)
            case 4:
                bytes.removeSubrange(min(position, bytes.count)...)
            default:
                bytes.insert(UInt8.random(in: 0...255, using: &random), at: min(position, bytes.count))
            }
        }
    }
}
