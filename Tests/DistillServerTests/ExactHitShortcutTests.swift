import HTTPTypes
import NIOCore
import NIOEmbedded
import NIOHTTPTypes
import Testing

@testable import DistillServer

/// `ExactHitShortcut` on an embedded channel, with an `answer` that answers every body "hit" and
/// nothing else: what it answers itself, what it forwards, and in which order.
@Suite struct ExactHitShortcutTests {
    static let bodyCap = 64

    /// A connected channel with only the shortcut; `asked` lists the bodies `answer` was asked about.
    final class Connection {
        let channel: EmbeddedChannel
        var asked: [String] = []

        init() throws {
            channel = EmbeddedChannel()
            let handler = ExactHitShortcut(bodyCap: ExactHitShortcutTests.bodyCap) { [unowned self] _, body in
                let text = String(buffer: body)
                asked.append(text)
                guard text == "hit" else { return nil }
                return (HTTPResponse(status: .ok, headerFields: [.contentLength: "6"]), ByteBuffer(string: "cached"))
            }
            try channel.pipeline.syncOperations.addHandler(handler)
        }

        /// Sends a request as the parser would: head, body pieces, end.
        func send(_ head: HTTPRequest = ExactHitShortcutTests.candidate, _ pieces: [String] = []) throws {
            try channel.writeInbound(HTTPRequestPart.head(head))
            for piece in pieces { try channel.writeInbound(HTTPRequestPart.body(ByteBuffer(string: piece))) }
            try channel.writeInbound(HTTPRequestPart.end(nil))
        }

        /// What reached the next handler, as "head PATH", "body TEXT" and "end".
        func forwarded() throws -> [String] {
            var parts: [String] = []
            while let part = try channel.readInbound(as: HTTPRequestPart.self) {
                switch part {
                case .head(let head): parts.append("head \(head.path ?? "")")
                case .body(let body): parts.append("body \(String(buffer: body))")
                case .end: parts.append("end")
                }
            }
            return parts
        }

        /// The bodies of the responses written towards the client, in order.
        func answered() throws -> [String] {
            var bodies: [String] = []
            while let part = try channel.readOutbound(as: HTTPResponsePart.self) {
                if case .body(let body) = part { bodies.append(String(buffer: body)) }
            }
            return bodies
        }

        /// The next handler's response to a forwarded request.
        func respond(_ text: String) throws {
            try channel.writeOutbound(HTTPResponsePart.head(HTTPResponse(status: .ok)))
            try channel.writeOutbound(HTTPResponsePart.body(ByteBuffer(string: text)))
            try channel.writeOutbound(HTTPResponsePart.end(nil))
        }
    }

    static let candidate = HTTPRequest(method: .post, scheme: "http", authority: "x", path: "/v1/chat/completions")

    @Test func aHitIsAnsweredAndAnythingElseForwardedAsItCame() throws {
        let connection = try Connection()
        try connection.send(Self.candidate, ["h", "it"])
        #expect(try connection.answered() == ["cached"])
        #expect(try connection.forwarded() == [])
        #expect(connection.asked == ["hit"], "the body's pieces, joined")

        try connection.send(Self.candidate, ["mi", "ss"])
        #expect(try connection.forwarded() == ["head /v1/chat/completions", "body mi", "body ss", "end"])
        #expect(try connection.answered() == [])
    }

    @Test func onlyCandidatesAreHeld() throws {
        var closing = Self.candidate
        closing.headerFields[.connection] = "Close"
        var expecting = Self.candidate
        expecting.headerFields[.expect] = "100-continue"
        var long = Self.candidate
        long.headerFields[.contentLength] = "\(Self.bodyCap + 1)"
        var query = Self.candidate
        query.path = "/v1/chat/completions?x=1"
        var get = Self.candidate
        get.method = .get
        for head in [closing, expecting, long, query, get] {
            let connection = try Connection()
            try connection.channel.writeInbound(HTTPRequestPart.head(head))
            #expect(try connection.forwarded() == ["head \(head.path!)"], "forwarded at its head: \(head)")
            try connection.channel.writeInbound(HTTPRequestPart.body(ByteBuffer(string: "hit")))
            try connection.channel.writeInbound(HTTPRequestPart.end(nil))
            #expect(try connection.forwarded() == ["body hit", "end"])
            #expect(connection.asked == [])
        }
    }

    @Test func aBodyBeyondTheCapIsForwardedOnceItGetsThere() throws {
        let connection = try Connection()
        let half = String(repeating: "x", count: Self.bodyCap / 2)
        try connection.channel.writeInbound(HTTPRequestPart.head(Self.candidate))
        try connection.channel.writeInbound(HTTPRequestPart.body(ByteBuffer(string: half)))
        try connection.channel.writeInbound(HTTPRequestPart.body(ByteBuffer(string: half)))
        #expect(try connection.forwarded() == [], "at the cap: still held")
        try connection.channel.writeInbound(HTTPRequestPart.body(ByteBuffer(string: "y")))
        #expect(try connection.forwarded() == ["head /v1/chat/completions", "body \(half)", "body \(half)", "body y"])
        try connection.channel.writeInbound(HTTPRequestPart.end(nil))
        #expect(try connection.forwarded() == ["end"])
        #expect(connection.asked == [])
    }

    @Test func aHitWaitsForNoForwardedResponseButIsForwardedBehindOne() throws {
        let connection = try Connection()
        try connection.send(Self.candidate, ["miss"])
        try connection.send(Self.candidate, ["hit"])
        #expect(try connection.forwarded() == ["head /v1/chat/completions", "body miss", "end", "head /v1/chat/completions", "body hit", "end"])
        #expect(try connection.answered() == [], "nothing overtakes the miss's response")
        #expect(connection.asked == ["miss"])

        try connection.respond("teacher")
        try connection.respond("routes' hit")
        try connection.send(Self.candidate, ["hit"])
        #expect(try connection.answered() == ["teacher", "routes' hit", "cached"], "answered once nothing is owed")
        #expect(try connection.forwarded() == [])
    }

    @Test func aHeldRequestIsForwardedWhenTheServerQuiesces() throws {
        let connection = try Connection()
        try connection.channel.writeInbound(HTTPRequestPart.head(Self.candidate))
        try connection.channel.writeInbound(HTTPRequestPart.body(ByteBuffer(string: "hi")))
        connection.channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        #expect(try connection.forwarded() == ["head /v1/chat/completions", "body hi"])
        try connection.channel.writeInbound(HTTPRequestPart.body(ByteBuffer(string: "t")))
        try connection.channel.writeInbound(HTTPRequestPart.end(nil))
        #expect(try connection.forwarded() == ["body t", "end"])
        #expect(connection.asked == [])
    }

    @Test func theDateHeaderIsWrittenAsHummingbirdWritesIt() {
        #expect(HTTPDate.format(0) == "Thu, 01 Jan 1970 00:00:00 GMT")
        #expect(HTTPDate.format(1_796_600_000) == "Sun, 06 Dec 2026 23:33:20 GMT")
    }
}
