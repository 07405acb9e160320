import DistillAPI
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import NIOHTTP1
import NIOHTTPTypes

/// Bounds how long a client may take to send a request, and answers the requests the HTTP parser
/// refuses, on one connection.
///
/// Hummingbird's idle timeout counts only complete request parts, so a client that trickles a
/// header a byte at a time (slowloris), or a body, would hold its connection and a file
/// descriptor for as long as it liked. Here the head must arrive within `headerTimeout` of the
/// connection opening (or of the previous response ending), and the body within `bodyTimeout` of
/// the head; otherwise the client gets a 408 and the connection closes. A connection kept alive
/// after a response is closed quietly instead, since its client may be about to reuse it.
///
/// A head the parser refuses (too many or too large header fields, bad syntax) gets a 431 or 400
/// with an OpenAI-style body, where Hummingbird would send an empty 400.
final class RequestGuard: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private let headerTimeout: TimeAmount
    private let bodyTimeout: TimeAmount
    /// Counts each refusal by its code (`distill_http_refusals_total`).
    private let refused: @Sendable (String) -> Void
    /// The codes `refused` is called with.
    static let refusalCodes = ["request_timeout", "request_header_fields_too_large", "invalid_http"]
    /// When the head or body being waited for is late; nil while a request is being answered.
    private var deadline: NIODeadline?
    /// The one wake-up scheduled, never later than `deadline`. A request that moves the deadline
    /// later leaves it be (it reschedules itself when it finds the deadline moved): a timer
    /// scheduled and cancelled per request cost a thirtieth of an exact cache hit.
    private var wakeUp: (task: Scheduled<Void>, at: NIODeadline)?
    /// Requests whose response has not ended.
    private var inFlight = 0
    private var readingBody = false
    /// A response has begun and not yet ended.
    private var responding = false
    private var answeredBefore = false
    private var closing = false

    init(headerTimeout: TimeAmount, bodyTimeout: TimeAmount, refused: @escaping @Sendable (String) -> Void) {
        self.headerTimeout = headerTimeout
        self.bodyTimeout = bodyTimeout
        self.refused = refused
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { arm(context, headerTimeout) }
    }

    func channelActive(context: ChannelHandlerContext) {
        arm(context, headerTimeout)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        stopTimer()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        stopTimer()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head:
            inFlight += 1
            readingBody = true
            arm(context, bodyTimeout)
        case .body:
            break
        case .end:
            readingBody = false
            disarm()
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head:
            responding = true
        case .body:
            break
        case .end:
            responding = false
            inFlight -= 1
            answeredBefore = true
            if inFlight == 0, !readingBody { arm(context, headerTimeout) }
        }
        context.write(data, promise: promise)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // Once a request is in Hummingbird's hands, it deals with what goes wrong.
        guard inFlight == 0, !readingBody else { return context.fireErrorCaught(error) }
        switch error {
        case HTTPParserError.headerOverflow:
            refuse(
                context, .init(code: 431), code: "request_header_fields_too_large",
                "The request's header fields are too many or too large.")
        case is HTTPParserError:
            refuse(context, .badRequest, code: "invalid_http", "The request is not valid HTTP/1.1.")
        default:
            context.fireErrorCaught(error)
        }
    }

    private func arm(_ context: ChannelHandlerContext, _ timeout: TimeAmount) {
        let deadline = context.eventLoop.now + timeout
        self.deadline = deadline
        if let wakeUp, wakeUp.at <= deadline { return }
        wakeUp?.task.cancel()
        scheduleWakeUp(context, at: deadline)
    }

    private func disarm() {
        deadline = nil
    }

    private func stopTimer() {
        deadline = nil
        wakeUp?.task.cancel()
        wakeUp = nil
    }

    private func scheduleWakeUp(_ context: ChannelHandlerContext, at time: NIODeadline) {
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let task = context.eventLoop.scheduleTask(deadline: time) {
            let (handler, context) = loopBound.value
            handler.wokeUp(context)
        }
        wakeUp = (task, time)
    }

    private func wokeUp(_ context: ChannelHandlerContext) {
        wakeUp = nil
        guard let deadline else { return }
        guard context.eventLoop.now >= deadline else { return scheduleWakeUp(context, at: deadline) }
        timedOut(context)
    }

    private func timedOut(_ context: ChannelHandlerContext) {
        deadline = nil
        if readingBody {
            // A request that already has its answer (a 413, say) is only being drained.
            if responding || inFlight == 0 {
                context.close(promise: nil)
            } else {
                refuse(context, .requestTimeout, code: "request_timeout", "The request body did not arrive in time.")
            }
        } else if answeredBefore {
            context.close(promise: nil)
        } else {
            refuse(context, .requestTimeout, code: "request_timeout", "The request header did not arrive in time.")
        }
    }

    /// Sends an error response of its own and closes the connection.
    private func refuse(_ context: ChannelHandlerContext, _ status: HTTPResponse.Status, code: String, _ message: String) {
        guard !closing else { return }
        closing = true
        stopTimer()
        refused(code)
        let body = APIError(status: Int(status.code), type: "invalid_request_error", code: code, message: message).body
        let bytes = ByteBuffer(bytes: (try? JSONEncoder().encode(body)) ?? Data())
        let head = HTTPResponse(
            status: status,
            headerFields: [.contentType: "application/json", .contentLength: String(bytes.readableBytes), .connection: "close"])
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(wrapOutboundOut(.body(bytes)), promise: nil)
        // Closed once the response is out; through the channel, which (unlike the context) may be captured.
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
    }
}
