import DistillAPI
import Foundation
import SeededRandom
import Testing

/// Scope keys hash `JSONValue.encoded()`: it must give exactly the bytes `JSONEncoder` gave when
/// the keys were first computed, or every stored scope would be orphaned.
@Suite struct JSONWriterTests {
    static let foundation: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()

    @Test func writesWhatJSONEncoderWritesForRandomDocuments() throws {
        var generator = SplitMix64(seed: 7)
        for _ in 0..<2_000 {
            let value = Self.randomValue(depth: 0, using: &generator)
            let expected = try Self.foundation.encode(value)
            #expect(value.encoded() == expected, "\(String(decoding: expected, as: UTF8.self))")
        }
    }

    @Test func writesTheEdgeCasesJSONEncoderWrites() throws {
        let numbers: [Double] = [1, -0.0, 0.1, 1e-7, 1e21, 1e16, 123_456_789_012_345_678, 5e-324, .greatestFiniteMagnitude, 1_234_567]
        let strings = ["", "\u{0}\u{1}\u{8}\u{9}\u{A}\u{B}\u{C}\u{D}\u{1F}\u{7F}", "\"\\/", "é\u{2028}🙂", "a\u{301}"]
        let value: JSONValue = [
            "numbers": .array(numbers.map { .number($0) }), "strings": .array(strings.map { .string($0) }),
            "integers": [.integer(.min), .integer(.max), 0],
            // Keys in UTF-8 byte order, not alphabetical: "B" < "Z" < "a" < "é".
            "keys": .object(Dictionary(uniqueKeysWithValues: ["b", "B", "a", "é", "Z", "aa", ""].map { ($0, JSONValue.null) })),
        ]
        #expect(value.encoded() == (try Self.foundation.encode(value)))
    }

    @Test func anOwnAnswerIsTheCompletionJSONValueWrites() throws {
        for (content, model) in [("card_arrival", "gpt-test"), ("line one\nsaid \"no\" \\ é🙂\u{1}", "m/\"x\""), ("", "")] {
            let expected: JSONValue = [
                "id": "chatcmpl-r1", "object": "chat.completion", "created": 1_796_578_205, "model": .string(model),
                "choices": [["index": 0, "message": ["role": "assistant", "content": .string(content)], "finish_reason": "length"]],
                "usage": ["prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0],
            ]
            let written = ChatCompletion.ownAnswer(
                id: "chatcmpl-r1", created: 1_796_578_205, model: model, content: content, finishReason: "length")
            #expect(written == expected.encoded(), "\(String(decoding: written, as: UTF8.self))")
            #expect(try JSONDecoder().decode(ChatCompletion.self, from: written).choices.first?.message.content == content)
        }
    }

    static func randomValue(depth: Int, using generator: inout SplitMix64) -> JSONValue {
        switch Int.random(in: 0..<(depth < 4 ? 8 : 6), using: &generator) {
        case 0: return .null
        case 1: return .bool(Bool.random(using: &generator))
        case 2: return .integer(Int64.random(in: -1_000_000_000_000...1_000_000_000_000, using: &generator))
        case 3:
            // Whole numbers, fractions, and magnitudes that switch to exponent notation.
            let mantissa = Double.random(in: -1000...1000, using: &generator)
            let scale = [1, 1e-9, 1e-3, 1e12, 1e17, 1e300][Int.random(in: 0..<6, using: &generator)]
            return .number(Bool.random(using: &generator) ? (mantissa * scale).rounded() : mantissa * scale)
        case 4, 5: return .string(randomString(using: &generator))
        case 6:
            return .array((0..<Int.random(in: 0..<5, using: &generator)).map { _ in randomValue(depth: depth + 1, using: &generator) })
        default:
            var members: [String: JSONValue] = [:]
            for _ in 0..<Int.random(in: 0..<6, using: &generator) {
                members[randomString(using: &generator)] = randomValue(depth: depth + 1, using: &generator)
            }
            return .object(members)
        }
    }

    /// Text drawn from ASCII (control characters, quotes and slashes included) and some code points
    /// beyond it, so that key order by UTF-8 bytes and escaping are both exercised.
    static func randomString(using generator: inout SplitMix64) -> String {
        let extra: [Unicode.Scalar] = ["é", "É", "ß", "\u{2028}", "中", "🙂", "\u{301}", "\u{FEFF}"]
        var scalars = String.UnicodeScalarView()
        for _ in 0..<Int.random(in: 0..<8, using: &generator) {
            if Int.random(in: 0..<5, using: &generator) == 0 {
                scalars.append(extra[Int.random(in: 0..<extra.count, using: &generator)])
            } else {
                scalars.append(Unicode.Scalar(UInt8.random(in: 0..<128, using: &generator)))
            }
        }
        return String(scalars)
    }
}
