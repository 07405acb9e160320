import DistillAPI
import Foundation
import Testing

/// The request parser against seeded hostile input: every body gets either a valid request or a
/// 400 that says what is wrong, and nothing crashes, however the bytes are damaged.
@Suite struct RequestParserFuzzTests {
    @Test func everyBodyGetsARequestOrAClearBadRequest() {
        let count = fuzzIterations(default: 20_000)
        var accepted = 0
        var failures = FailureLog()
        for seed in fuzzSeeds(count) {
            var generator = HostileJSON(seed: seed)
            let input = generator.request()
            let request: ChatRequest
            do {
                request = try ChatRequest.parse(Data(input))
            } catch {
                if error.status != 400 || error.type != "invalid_request_error" || error.message.isEmpty
                    || error.message.utf8.count > 1024
                {
                    failures.record(seed: seed, "unclear refusal \(error)", input)
                }
                continue
            }
            accepted += 1
            // What was accepted encodes (for the scope hash, the upstream and the log) to a body
            // that parses back to the same request. (A number may change form on the way, as
            // -9223372036854775809 does: -9.223372036854776e+18 reads back as an integer.)
            guard let again = try? ChatRequest.parse(request.encodedBody()),
                JSONValue.object(again.body).sameValue(as: .object(request.body))
            else {
                failures.record(seed: seed, "accepted, but its encoding does not parse back", input)
                continue
            }
            // Text the store keeps as SQLite TEXT must not hold NUL: SQLite would cut it there.
            if request.model.contains("\u{0}") || request.messages.contains(where: { $0.text.contains("\u{0}") }) {
                failures.record(seed: seed, "accepted a NUL in text the store keeps", input)
            }
            if request.messages.isEmpty { failures.record(seed: seed, "accepted without messages", input) }
        }
        failures.report()
        // Both outcomes are common: the generator explores past the first syntax error.
        #expect(accepted > count / 10, "accepted \(accepted) of \(count)")
        #expect(accepted < count * 9 / 10, "accepted \(accepted) of \(count)")
    }

    /// The parser replaced decoding `JSONValue` through `Decodable` (which was superlinear): on
    /// every input both accept they must agree, so that no request changes its meaning (or its
    /// scope) with the change, and what the decoder refused stays refused. The parser is stricter
    /// in one way, as RFC 8259 and OpenAI's own API are: the decoder let through trailing commas
    /// and never looked at a repeated key's second value (`{"x":1,"x":-}`).
    @Test func parsesAsFoundationsDecoderDid() {
        var failures = FailureLog()
        var stricter = 0
        let count = fuzzIterations(default: 10_000)
        for seed in fuzzSeeds(count) {
            var generator = HostileJSON(seed: seed)
            var input = Array(generator.chatRequest().utf8)
            if generator.random.chance(0.5) { generator.damage(&input) }
            let ours = try? JSONValue.parse(Data(input))
            let decoders = String(validating: input, as: UTF8.self) == nil ? nil : try? JSONDecoder().decode(JSONValue.self, from: Data(input))
            switch (ours, decoders) {
            case (let ours?, let decoders?) where ours != decoders:
                failures.record(seed: seed, "ours: \(ours.encodedString), the decoder's: \(decoders.encodedString)", input)
            case (_?, nil):
                failures.record(seed: seed, "accepted what the decoder refused", input)
            case (nil, _?):
                stricter += 1
            default:
                break
            }
        }
        failures.report()
        #expect(stricter < count / 100, "refused \(stricter) inputs the decoder accepted")
    }

    @Test func nestingIsRefusedBeyondTheLimitWhereverItIs() throws {
        func body(depth: Int) -> Data {
            Data((#"{"model":"m","messages":[{"role":"user","content":"hi"}],"x":"# + String(repeating: "[", count: depth) + String(repeating: "]", count: depth) + "}").utf8)
        }
        // The limit counts the request's own object and the array around `x`'s value.
        _ = try ChatRequest.parse(body(depth: JSONValue.maximumDepth - 1))
        #expect(throws: APIError.self) { try ChatRequest.parse(body(depth: JSONValue.maximumDepth)) }
        #expect(throws: APIError.self) { try ChatRequest.parse(body(depth: 100_000)) }
        // Brackets inside strings are text, not nesting.
        let quoted = #"{"model":"m","messages":[{"role":"user","content":"\#(String(repeating: "[{", count: 1000))\""}]}"#
        #expect(try ChatRequest.parse(Data(quoted.utf8)).messages[0].text.count == 2001)
    }
}

/// Collects fuzz failures with the seed that reproduces each, reporting the first few in full.
struct FailureLog {
    private(set) var count = 0
    private var examples: [String] = []

    mutating func record(seed: UInt64, _ what: String, _ input: some Collection<UInt8>) {
        count += 1
        if examples.count < 5 { examples.append("seed \(seed): \(what)\n  input: \(describe(input))") }
    }

    func report(sourceLocation: SourceLocation = #_sourceLocation) {
        guard count > 0 else { return }
        Issue.record("\(count) failing inputs; the first:\n\(examples.joined(separator: "\n"))", sourceLocation: sourceLocation)
    }
}

extension JSONValue {
    /// Equal, counting an integer and a double of the same value as the same number.
    func sameValue(as other: JSONValue) -> Bool {
        switch (self, other) {
        case (.integer(let a), .number(let b)), (.number(let b), .integer(let a)): Double(a) == b
        case (.array(let a), .array(let b)): a.count == b.count && zip(a, b).allSatisfy { $0.sameValue(as: $1) }
        case (.object(let a), .object(let b)):
            a.count == b.count && a.allSatisfy { key, value in b[key].map { value.sameValue(as: $0) } ?? false }
        default: self == other
        }
    }
}
