import DistillAPI
import DistillCore
import Foundation
import HTTPTypes
import NIOCore
import NIOHTTPTypes
import Synchronization

/// Answers an exact cache hit whose answer is held in memory on the connection's event loop, in
/// front of Hummingbird; every other request passes through unchanged.
///
/// Hummingbird hands each request from the event loop to Swift's task pool and the response back
/// again, and those hops cost most of an exact hit's CPU (docs/benchmarks.md, "Cache throughput").
/// What a hit needs is synchronous (the API key, the rate limit, the cache policy and lookup, the
/// answer's encoding), so it is answered here with the functions the routes use: `answer`.
///
/// A candidate (a POST to exactly `/v1/chat/completions`, without `Connection: close` or
/// `Expect`, whose body fits in `bodyCap`) is held until its end; then `answer` decides, and a
/// request it does not answer is forwarded as it came (head, body parts, end). A body that grows
/// past the cap is forwarded at once, so that the routes answer it (413 beyond
/// `server.max_body_bytes`). While a forwarded request awaits its response, later requests are
/// forwarded too: responses go out in the order of their requests.
final class ExactHitShortcut: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    /// The response to a candidate's head and whole body, or nil to forward it.
    typealias Answer = (HTTPRequest, ByteBuffer) -> (head: HTTPResponse, body: ByteBuffer)?

    private let bodyCap: Int
    private let answer: Answer

    private enum State {
        /// Between requests.
        case idle
        /// Holding a candidate until its end.
        case holding(HTTPRequest, body: [ByteBuffer], bytes: Int)
        /// Passing the current request's parts through.
        case forwarding
    }
    private var state = State.idle
    /// Requests forwarded whose response has not ended.
    private var awaitingResponse = 0

    init(bodyCap: Int, answer: @escaping Answer) {
        self.bodyCap = bodyCap
        self.answer = answer
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        switch (state, part) {
        case (.idle, .head(let head)):
            if isCandidate(head) {
                state = .holding(head, body: [], bytes: 0)
            } else {
                forward(context, head: head, body: [])
            }
        case (.holding(let head, var body, let bytes), .body(let piece)):
            body.append(piece)
            let total = bytes + piece.readableBytes
            if total > bodyCap {
                forward(context, head: head, body: body)
            } else {
                state = .holding(head, body: body, bytes: total)
            }
        case (.holding(let head, let body, _), .end(let trailers)):
            if awaitingResponse == 0, trailers == nil, let response = answer(head, joined(body)) {
                state = .idle
                context.write(wrapOutboundOut(.head(response.head)), promise: nil)
                context.write(wrapOutboundOut(.body(response.body)), promise: nil)
                context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            } else {
                forward(context, head: head, body: body)
                state = .idle
                context.fireChannelRead(data)
            }
        case (.forwarding, .end):
            state = .idle
            context.fireChannelRead(data)
        default:
            // The rest of a forwarded request; or parts out of order, which the parser never
            // sends, left to Hummingbird.
            context.fireChannelRead(data)
        }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) { awaitingResponse -= 1 }
        context.write(data, promise: promise)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // Hummingbird closes a connection on shutdown once it has answered what it was given: it
        // must be given what is held.
        if event is ChannelShouldQuiesceEvent, case .holding(let head, let body, _) = state {
            forward(context, head: head, body: body)
        }
        context.fireUserInboundEventTriggered(event)
    }

    private func isCandidate(_ head: HTTPRequest) -> Bool {
        guard head.method == .post, head.path == APIPath.chatCompletions.pattern, head.headerFields[.expect] == nil else { return false }
        if let connection = head.headerFields[.connection], connection.lowercased().contains("close") { return false }
        if let length = head.headerFields[.contentLength], (Int(length) ?? .max) > bodyCap { return false }
        return true
    }

    /// Passes a request's head and the body parts received so far on; the rest follows as it comes.
    private func forward(_ context: ChannelHandlerContext, head: HTTPRequest, body: [ByteBuffer]) {
        state = .forwarding
        awaitingResponse += 1
        context.fireChannelRead(wrapInboundOut(.head(head)))
        for piece in body { context.fireChannelRead(wrapInboundOut(.body(piece))) }
    }

    private func joined(_ body: [ByteBuffer]) -> ByteBuffer {
        guard body.count != 1 else { return body[0] }
        var whole = ByteBuffer()
        for var piece in body { whole.writeBuffer(&piece) }
        return whole
    }
}

extension ExactHitShortcut {
    /// The body cap: small, as a chat request whose answer is cached is; never above the server's own limit.
    static func bodyCap(maxBodyBytes: Int) -> Int { min(16 << 10, maxBodyBytes) }

    /// The shortcut's `answer`: the exact hit `completions` holds in memory for the request, with
    /// the status, header fields and body the routes would send and the metrics they would record;
    /// nil for a request with a bad or missing key, one the routes would refuse (invalid, or
    /// beyond the rate limit), a stream, or anything but a held exact hit.
    static func heldExactHits(
        completions: CompletionService, access: ClientAccess, metrics: DistillMetrics, serverName: String
    ) -> @Sendable (HTTPRequest, ByteBuffer) -> (head: HTTPResponse, body: ByteBuffer)? {
        { head, body in
            let started = ContinuousClock.now
            let fields = head.headerFields
            let authorization = fields[.authorization]
            guard access.refusal(authorization: authorization) == nil,
                let chat = try? ChatRequest.parse(Data(buffer: body)), !chat.stream
            else { return nil }
            let requestID = DistillMiddleware.requestID(from: fields[.requestID])
            let info = RequestInfo(requestID: requestID, headers: fields)
            guard let answer = completions.heldExactHit(chat, info: info, admit: { access.admit(authorization: authorization) == nil })
            else { return nil }
            // In the order the routes, DistillMiddleware and Hummingbird add them.
            var headers = HTTPFields.completion(answer)
            headers.append(HTTPField(name: .contentLength, value: String(answer.body.count)))
            headers.append(HTTPField(name: .requestID, value: requestID))
            headers.append(HTTPField(name: .date, value: HTTPDate.shared.now))
            headers.append(HTTPField(name: .server, value: serverName))
            metrics.recordRequest(route: Routes.chatCompletions, status: 200, source: AnswerSource.cache.rawValue, duration: .now - started)
            return (HTTPResponse(status: .ok, headerFields: headers), ByteBuffer(bytes: answer.body))
        }
    }
}

/// The `Date` header's value (RFC 9110's IMF-fixdate, as Hummingbird writes it), formatted once a second.
final class HTTPDate: Sendable {
    static let shared = HTTPDate()
    private let current = Mutex((second: -1, text: ""))

    var now: String {
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        let second = time.tv_sec
        return current.withLock { current in
            if current.second != second { current = (second, Self.format(second)) }
            return current.text
        }
    }

    static func format(_ second: Int) -> String {
        var time = time_t(second)
        var parts = tm()
        gmtime_r(&time, &parts)
        func twoDigits(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return "\(weekdays[Int(parts.tm_wday)]), \(twoDigits(parts.tm_mday)) \(months[Int(parts.tm_mon)]) \(parts.tm_year + 1900) "
            + "\(twoDigits(parts.tm_hour)):\(twoDigits(parts.tm_min)):\(twoDigits(parts.tm_sec)) GMT"
    }

    private static let weekdays = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
    private static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
}
