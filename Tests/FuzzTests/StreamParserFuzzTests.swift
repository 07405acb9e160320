import DistillAPI
import SeededRandom
import Testing

/// The server-sent-event parser against seeded streams: valid ones give exactly their events
/// however the bytes are split across reads; damaged ones give the same result split or whole,
/// and never more than the event size limit.
@Suite struct StreamParserFuzzTests {
    /// Data values: text, separators the wire format has to carry, and field-like text.
    static let values = ["", " ", "  two", "{\"a\":1}", "[DONE]", "data: x", ":", "é🙂", "a:b", "event: e", "\u{0}", "\t"]
    static let lineEnds = ["\n", "\r\n", "\r"]

    /// A random valid stream and the events it must give.
    static func stream(_ random: inout SplitMix64) -> (bytes: [UInt8], events: [ServerSentEvent]) {
        var wire = ""
        var events: [ServerSentEvent] = []
        var previousEnd = "\n"
        func line(_ text: String) {
            // After a bare CR, an empty line ending in LF would read as the CR's own CRLF.
            var end = random.pick(lineEnds)
            if previousEnd == "\r", text.isEmpty, end == "\n" { end = "\r\n" }
            wire += text + end
            previousEnd = end
        }
        for _ in 0..<random.upTo(6) {
            if random.chance(0.2) { line(": keep-alive") }
            var name: String?
            if random.chance(0.2) {
                name = random.pick(["error", "message", "x y"])
                line("event: " + name!)
            }
            var data: [String] = []
            for _ in 0..<random.upTo(3) {
                let value = random.pick(values) + (random.chance(0.3) ? random.pick(values) : "")
                data.append(value)
                // One space after the colon is the separator; none is allowed too (unless the value starts with one).
                line(value.hasPrefix(" ") || random.chance(0.7) ? "data: " + value : "data:" + value)
                if random.chance(0.1) {
                    // Other fields are ignored; a bare `data` is a data line with an empty value.
                    let field = random.pick(["id: 7", "retry: 100", "unknown", "data"])
                    line(field)
                    if field == "data" { data.append("") }
                }
            }
            line("")
            if !data.isEmpty { events.append(ServerSentEvent(event: name, data: data.joined(separator: "\n"))) }
        }
        return (Array(wire.utf8), events)
    }

    /// Feeds `bytes` in pieces cut at random points.
    static func feedSplit(_ bytes: [UInt8], _ random: inout SplitMix64, limit: Int = 4 << 20) -> Result<[ServerSentEvent], ServerSentEventParser.ParseError> {
        var parser = ServerSentEventParser(maximumEventBytes: limit)
        var events: [ServerSentEvent] = []
        var start = 0
        do {
            while start < bytes.count {
                let end = min(bytes.count, start + 1 + random.upTo(random.chance(0.5) ? 3 : 64))
                events += try parser.feed(bytes[start..<end])
                start = end
            }
        } catch {
            return .failure(error)
        }
        return .success(events)
    }

    static func feedWhole(_ bytes: [UInt8], limit: Int = 4 << 20) -> Result<[ServerSentEvent], ServerSentEventParser.ParseError> {
        var parser = ServerSentEventParser(maximumEventBytes: limit)
        return Result(catching: { () throws(ServerSentEventParser.ParseError) in try parser.feed(bytes) })
    }

    @Test func validStreamsGiveTheirEventsHoweverTheyAreSplit() {
        var failures = FailureLog()
        for seed in fuzzSeeds(fuzzIterations(default: 20_000)) {
            var random = SplitMix64(seed: seed)
            let (bytes, expected) = Self.stream(&random)
            if (try? Self.feedWhole(bytes).get()) != expected { failures.record(seed: seed, "whole: not the expected events", bytes) }
            if (try? Self.feedSplit(bytes, &random).get()) != expected { failures.record(seed: seed, "split: not the expected events", bytes) }
        }
        failures.report()
    }

    @Test func damagedStreamsGiveTheSameResultSplitOrWholeWithinTheLimit() {
        let limit = 64
        var failures = FailureLog()
        for seed in fuzzSeeds(fuzzIterations(default: 20_000)) {
            var random = SplitMix64(seed: seed)
            var bytes = Self.stream(&random).bytes
            var damage = HostileJSON(seed: seed)
            damage.damage(&bytes)
            if random.chance(0.1) { bytes += Array(repeating: UInt8(ascii: "x"), count: random.upTo(200)) }
            let whole = Self.feedWhole(bytes, limit: limit)
            if whole != Self.feedSplit(bytes, &random, limit: limit) { failures.record(seed: seed, "split and whole differ", bytes) }
            // Each data byte is at most one replacement character (3 bytes) once decoded.
            if case .success(let events) = whole, events.contains(where: { $0.data.utf8.count > 3 * limit }) {
                failures.record(seed: seed, "an event beyond the limit", bytes)
            }
        }
        failures.report()
    }

    @Test func anEncodedEventParsesBackWithItsLineBreaksAsLF() {
        let pieces = ["a", "", " b", "\n", "\r", "\r\n", "é", ":", "data: x"]
        var failures = FailureLog()
        for seed in fuzzSeeds(fuzzIterations(default: 5_000)) {
            var random = SplitMix64(seed: seed)
            let data = (0..<random.upTo(6)).map { _ in random.pick(pieces) }.joined()
            let event = ServerSentEvent(event: random.chance(0.3) ? "e" : nil, data: data)
            // SSE data cannot carry CR: every line break arrives as LF.
            let expected = ServerSentEvent(
                event: event.event, data: data.replacingOccurrences(of: "\r\n", with: "\n").replacingOccurrences(of: "\r", with: "\n"))
            if (try? Self.feedWhole(Array(event.encoded.utf8)).get()) != [expected] {
                failures.record(seed: seed, "does not parse back", Array(event.encoded.utf8))
            }
        }
        failures.report()
    }
}
