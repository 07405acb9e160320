import AsyncHTTPClient
import DistillAPI
import Foundation
import NIOCore
import SeededRandom
import Testing

@testable import Teacher

/// The teacher-response decoding (complete bodies, and streams through the SSE parser and the
/// answer accumulator) against seeded upstream answers, valid and damaged, split at random.
@Suite struct TeacherResponseFuzzTests {
    /// Content pieces as the upstream escapes them, and the text each stands for.
    static let pieces: [(json: String, text: String)] = [
        ("hello", "hello"), (" world", " world"), ("\\n", "\n"), ("é", "é"), ("\\u00e9", "é"), ("\\\"", "\""),
        ("🙂", "🙂"), ("\\uD83D\\uDE00", "😀"), ("", ""), ("data: [DONE]", "data: [DONE]"), ("\\u0000", "\u{0}"),
    ]

    /// A streamed answer as an upstream sends it, with the text, finish reason and usage it makes.
    static func upstream(_ random: inout SplitMix64) -> (bytes: [UInt8], text: String, usage: Bool) {
        var wire = ""
        func event(_ json: String) { wire += "data: " + json + random.pick(["\n\n", "\r\n\r\n"]) }
        let head = #""id":"c1","object":"chat.completion.chunk","created":1,"model":"m""#
        event(#"{\#(head),"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#)
        var text = ""
        for _ in 0..<random.upTo(5) {
            let piece = random.pick(pieces)
            text += piece.text
            let logprobs = random.chance(0.5)
                ? #"{"content":[{"token":"\#(piece.json)","logprob":-0.5,"top_logprobs":[{"token":"x","logprob":-1.5}]}]}"#
                : "null"
            event(#"{\#(head),"choices":[{"index":0,"delta":{"content":"\#(piece.json)"},"logprobs":\#(logprobs),"finish_reason":null}]}"#)
            if random.chance(0.1) { event(#"{\#(head),"choices":[{"index":1,"delta":{"content":"other"}}]}"#) }
            if random.chance(0.1) { wire += ": keep-alive\n\n" }
        }
        event(#"{\#(head),"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#)
        let usage = random.chance(0.7)
        if usage { event(#"{\#(head),"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}"#) }
        wire += "data: [DONE]\n\n"
        return (Array(wire.utf8), text, usage)
    }

    /// What reading a stream came to.
    enum Outcome: Equatable {
        case finished(TeacherAnswer, chunks: Int)
        case failed(TeacherError)
    }

    /// Reads `bytes` as an upstream body delivered in reads cut at random points.
    static func read(_ bytes: [UInt8], _ random: inout SplitMix64) async -> Outcome {
        var buffers: [ByteBuffer] = []
        var start = 0
        while start < bytes.count {
            let end = min(bytes.count, start + 1 + random.upTo(random.chance(0.5) ? 7 : 300))
            buffers.append(ByteBuffer(bytes: bytes[start..<end]))
            start = end
        }
        let call = TeacherClient.PreparedCall(body: Data(), stream: true, stripLogprobs: true, stripUsage: true)
        let stream = TeacherStream(
            body: .stream(Reads(buffers: buffers)), call: call, attempts: 1,
            breaker: CircuitBreaker(failureThreshold: 5, openDuration: .seconds(1)))
        var events = stream.events()
        var chunks = 0
        do {
            while let event = try await events.next() {
                switch event {
                case .chunk: chunks += 1
                case .finished(let answer): return .finished(answer, chunks: chunks)
                }
            }
            return .failed(.interrupted(detail: "no [DONE]"))
        } catch {
            return .failed(error)
        }
    }

    @Test func validStreamsGiveTheirAnswerHoweverTheyAreSplit() async {
        var failures = FailureLog()
        for seed in fuzzSeeds(fuzzIterations(default: 5_000)) {
            var random = SplitMix64(seed: seed)
            let (bytes, text, usage) = Self.upstream(&random)
            let outcome = await Self.read(bytes, &random)
            if text.contains("\u{0}") {
                // The store cannot keep a NUL, so such an answer is refused rather than cut.
                guard case .failed(.badResponse) = outcome else {
                    failures.record(seed: seed, "an answer with a NUL was accepted", bytes)
                    continue
                }
            } else {
                guard case .finished(let answer, _) = outcome, answer.text == text, answer.finishReason == "stop",
                    (answer.usage != nil) == usage
                else {
                    failures.record(seed: seed, "not the expected answer: \(outcome)", bytes)
                    continue
                }
            }
        }
        failures.report()
    }

    @Test func damagedStreamsFailCleanlyTheSameWayHoweverTheyAreSplit() async {
        var failures = FailureLog()
        var finished = 0
        let count = fuzzIterations(default: 5_000)
        for seed in fuzzSeeds(count) {
            var random = SplitMix64(seed: seed)
            var bytes = Self.upstream(&random).bytes
            var damage = HostileJSON(seed: seed)
            damage.damage(&bytes)
            let first = await Self.read(bytes, &random)
            let second = await Self.read(bytes, &random)
            if first != second { failures.record(seed: seed, "differs by split: \(first) / \(second)", bytes) }
            switch first {
            case .finished(let answer, _):
                finished += 1
                if answer.text.contains("\u{0}") { failures.record(seed: seed, "an answer with a NUL", bytes) }
            case .failed(.badResponse), .failed(.interrupted):
                break
            case .failed(let error):
                failures.record(seed: seed, "unexpected error \(error)", bytes)
            }
        }
        failures.report()
        #expect(finished > count / 20, "some damage leaves a readable answer: \(finished) of \(count)")
    }

    @Test func completeBodiesGiveAnAnswerOrABadResponse() {
        var failures = FailureLog()
        var answered = 0
        let count = fuzzIterations(default: 20_000)
        let call = TeacherClient.PreparedCall(body: Data(), stream: false, stripLogprobs: true, stripUsage: false)
        for seed in fuzzSeeds(count) {
            var random = HostileJSON(seed: seed)
            let piece = random.random.pick(Self.pieces).json
            let content = random.random.chance(0.8) ? "\"\(piece)\"" : random.value(depth: 1)
            let logprobs = random.random.chance(0.5)
                ? #"{"content":[{"token":\#(random.string()),"logprob":\#(random.number()),"top_logprobs":\#(random.value(depth: 2))}]}"#
                : random.value(depth: 1)
            var bytes = Array(
                #"{"id":"c","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":\#(content)},"logprobs":\#(logprobs),"finish_reason":"stop"}],"usage":{"prompt_tokens":\#(random.random.chance(0.8) ? "3" : random.number()),"completion_tokens":2,"total_tokens":5}}"#.utf8)
            if random.random.chance(0.5) { random.damage(&bytes) }
            do {
                let completion = try TeacherClient.completion(from: Data(bytes), call: call, attempts: 1)
                answered += 1
                if completion.answer.text.contains("\u{0}") { failures.record(seed: seed, "an answer with a NUL", bytes) }
                if (try? JSONValue.parse(completion.clientBody.encoded())) == nil {
                    failures.record(seed: seed, "the client's body does not encode", bytes)
                }
            } catch {
                guard case .badResponse = error else {
                    failures.record(seed: seed, "unexpected error \(error)", bytes)
                    continue
                }
            }
        }
        failures.report()
        #expect(answered > count / 10 && answered < count * 9 / 10, "answered \(answered) of \(count)")
    }
}

/// An upstream body as a fixed series of reads.
struct Reads: AsyncSequence, Sendable {
    let buffers: [ByteBuffer]

    struct AsyncIterator: AsyncIteratorProtocol {
        var rest: ArraySlice<ByteBuffer>
        mutating func next() async -> ByteBuffer? { rest.popFirst() }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(rest: buffers[...]) }
}
