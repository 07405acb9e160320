import DistillAPI
import Testing

@Suite struct ServerSentEventTests {
    @Test func parsesEventsSplitAnywhereAcrossReads() throws {
        let wire = "data: {\"a\":1}\r\n\r\n: keep-alive\n\nevent: error\ndata: line one\ndata: line two\n\ndata:[DONE]\n\n"
        let bytes = Array(wire.utf8)
        // Every split point gives the same events as one read.
        for split in 0...bytes.count {
            var parser = ServerSentEventParser()
            let events = try parser.feed(bytes[..<split]) + parser.feed(bytes[split...])
            #expect(
                events == [
                    ServerSentEvent(data: "{\"a\":1}"),
                    ServerSentEvent(event: "error", data: "line one\nline two"),
                    ServerSentEvent(data: "[DONE]"),
                ])
        }
    }

    @Test func anEventIsDispatchedOnlyByABlankLine() throws {
        var parser = ServerSentEventParser()
        #expect(try parser.feed("data: partial\n".utf8).isEmpty)
        #expect(try parser.feed("\n".utf8) == [ServerSentEvent(data: "partial")])
    }

    @Test func acceptsBareCarriageReturnsAsLineEnds() throws {
        var parser = ServerSentEventParser()
        #expect(try parser.feed("data: x\r\rdata: y\r\r".utf8) == [ServerSentEvent(data: "x"), ServerSentEvent(data: "y")])
    }

    @Test func refusesAnEventThatNeverEnds() {
        var parser = ServerSentEventParser(maximumEventBytes: 64)
        #expect(throws: ServerSentEventParser.ParseError.eventTooLarge(limit: 64)) {
            _ = try parser.feed(("data: " + String(repeating: "x", count: 100)).utf8)
        }
    }

    @Test func encodingParsesBackToTheSameEvent() throws {
        let event = ServerSentEvent(event: "update", data: "a\nb")
        var parser = ServerSentEventParser()
        #expect(event.encoded == "event: update\ndata: a\ndata: b\n\n")
        #expect(try parser.feed(event.encoded.utf8) == [event])
        #expect(ServerSentEvent(data: "[DONE]").isDone)
    }

    @Test func everyLineBreakInDataEndsADataLine() throws {
        // "\r\n" is one Character in Swift: splitting on "\n" alone left it inside a data line,
        // where the parser on the other side reads it as a line end of its own.
        var parser = ServerSentEventParser()
        #expect(ServerSentEvent(data: "a\r\nb\rc").encoded == "data: a\ndata: b\ndata: c\n\n")
        #expect(try parser.feed(ServerSentEvent(data: "a\r\nb").encoded.utf8) == [ServerSentEvent(data: "a\nb")])
    }
}
