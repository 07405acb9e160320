import DistillAPI
import Foundation
import HTTPTypes
import NIOCore
import NIOEmbedded
import NIOHTTP1
import NIOHTTPTypes
import Synchronization
import Testing

@testable import DistillServer

/// `RequestGuard` on an embedded channel, on the event loop's virtual clock: each deadline and
/// refusal, and the cases where it must stay silent.
@Suite struct RequestGuardTests {
    final class Refusals: Sendable {
        let codes = Mutex<[String]>([])
    }

    /// A connected channel with only the guard (10 s for heads, 60 s for bodies).
    func connection() throws -> (EmbeddedChannel, EmbeddedEventLoop, Refusals) {
        let loop = EmbeddedEventLoop()
        let refusals = Refusals()
        let handler = RequestGuard(headerTimeout: .seconds(10), bodyTimeout: .seconds(60)) { code in
            refusals.codes.withLock { $0.append(code) }
        }
        let channel = EmbeddedChannel(handler: handler, loop: loop)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return (channel, loop, refusals)
    }

    static let head = HTTPRequestPart.head(HTTPRequest(method: .post, scheme: "http", authority: "x", path: "/v1/chat/completions"))

    /// The status of the response the guard wrote itself, if any.
    func refusal(_ channel: EmbeddedChannel) throws -> (status: Int, code: String?)? {
        guard case .head(let response)? = try channel.readOutbound(as: HTTPResponsePart.self) else { return nil }
        guard case .body(let body)? = try channel.readOutbound(as: HTTPResponsePart.self) else { return nil }
        let error = try JSONDecoder().decode(ErrorBody.self, from: Data(buffer: body)).error
        return (response.status.code, error.code)
    }

    @Test func aHeadThatDoesNotArriveGetsA408AndTheConnectionCloses() throws {
        let (channel, loop, refusals) = try connection()
        loop.advanceTime(by: .seconds(9))
        #expect(channel.isActive)
        loop.advanceTime(by: .seconds(2))
        #expect(try refusal(channel)?.status == 408)
        #expect(!channel.isActive)
        #expect(refusals.codes.withLock { $0 } == ["request_timeout"])
    }

    @Test func aBodyThatDoesNotArriveGetsA408() throws {
        let (channel, loop, _) = try connection()
        try channel.writeInbound(Self.head)
        loop.advanceTime(by: .seconds(30))
        try channel.writeInbound(HTTPRequestPart.body(ByteBuffer(string: "{")))
        #expect(channel.isActive, "a body has its own deadline, from the head")
        loop.advanceTime(by: .seconds(31))
        #expect(try refusal(channel)?.code == "request_timeout")
        #expect(!channel.isActive)
    }

    @Test func aLongAnswerIsNeverCutAndAnIdleKeptAliveConnectionClosesQuietly() throws {
        let (channel, loop, refusals) = try connection()
        try channel.writeInbound(Self.head)
        try channel.writeInbound(HTTPRequestPart.end(nil))
        try channel.writeOutbound(HTTPResponsePart.head(HTTPResponse(status: .ok)))
        // A stream from the teacher may take minutes: no deadline runs while it is answered.
        loop.advanceTime(by: .seconds(600))
        #expect(channel.isActive)
        try channel.writeOutbound(HTTPResponsePart.end(nil))
        _ = try channel.readOutbound(as: HTTPResponsePart.self)
        _ = try channel.readOutbound(as: HTTPResponsePart.self)
        loop.advanceTime(by: .seconds(11))
        #expect(!channel.isActive)
        #expect(try channel.readOutbound(as: HTTPResponsePart.self) == nil, "no 408 its client could take for the next answer")
        #expect(refusals.codes.withLock { $0.isEmpty })
    }

    @Test func aRequestAlreadyAnsweredWhileItsBodyDrainsGetsNoSecondAnswer() throws {
        let (channel, loop, _) = try connection()
        try channel.writeInbound(Self.head)
        // Hummingbird answers 413 and goes on draining the body.
        try channel.writeOutbound(HTTPResponsePart.head(HTTPResponse(status: .contentTooLarge)))
        try channel.writeOutbound(HTTPResponsePart.end(nil))
        _ = try channel.readOutbound(as: HTTPResponsePart.self)
        _ = try channel.readOutbound(as: HTTPResponsePart.self)
        loop.advanceTime(by: .seconds(61))
        #expect(!channel.isActive)
        #expect(try channel.readOutbound(as: HTTPResponsePart.self) == nil)
    }

    @Test func headsTheParserRefusesGetA431OrA400() throws {
        for (error, status) in [(HTTPParserError.headerOverflow, 431), (.invalidMethod, 400)] {
            let (channel, _, _) = try connection()
            channel.pipeline.fireErrorCaught(error)
            #expect(try refusal(channel)?.status == status)
            #expect(!channel.isActive)
        }
    }
}
