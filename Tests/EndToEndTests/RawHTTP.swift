import DistillAPI
import Foundation
import NIOCore
import NIOPosix

/// A client connection that sends bytes exactly as given — partial heads, header floods, paths
/// no HTTP client would normalize, bodies that are not JSON — and reads what the server answers
/// until it closes. Everything a well-formed request can say goes through `DistillClient`.
enum RawHTTP {
    enum Address {
        case tcp(host: String, port: Int)
        case unix(String)

        /// The TCP address of an `http://HOST:PORT` URL.
        init(_ url: String) {
            let hostPort = url.replacingOccurrences(of: "http://", with: "")
            let colon = hostPort.lastIndex(of: ":")!
            self = .tcp(host: String(hostPort[..<colon]), port: Int(hostPort[hostPort.index(after: colon)...])!)
        }
    }

    struct Exchange {
        /// Everything the server sent before it closed the connection.
        var answer: String
        /// Whether every piece was written before the server closed the connection.
        var sentAll: Bool
        /// When the server closed the connection.
        var closedAt: ContinuousClock.Instant

        var status: Int? { answer.split(separator: " ", maxSplits: 2).dropFirst().first.flatMap { Int($0) } }
        var body: String { answer.components(separatedBy: "\r\n\r\n").dropFirst().joined(separator: "\r\n\r\n") }
        /// The OpenAI-shaped error's code, if the body is one.
        var errorCode: String? { (try? JSONValue.parse(Data(body.utf8)))?["error"]?["code"]?.stringValue }
    }

    /// Writes `pieces` one after another, `pause` apart, until the server closes the connection;
    /// `started` runs once the first piece is written.
    static func exchange(
        _ address: Address, _ pieces: [Data], pause: Duration = .zero, started: @escaping @Sendable () -> Void = {}
    ) async throws -> Exchange {
        let bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        let wrap = { @Sendable (channel: any Channel) in
            channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel) }
        }
        let channel = switch address {
        case .tcp(let host, let port): try await bootstrap.connect(host: host, port: port, channelInitializer: wrap)
        case .unix(let path): try await bootstrap.connect(unixDomainSocketPath: path, channelInitializer: wrap)
        }
        enum Side { case read(String, ContinuousClock.Instant), wrote(all: Bool) }
        return try await channel.executeThenClose { inbound, outbound in
            try await withThrowingTaskGroup(of: Side.self) { group in
                group.addTask {
                    var answer = ""
                    // A reset ends the answer as a close does.
                    do {
                        for try await buffer in inbound { answer += String(buffer: buffer) }
                    } catch {}
                    return .read(answer, .now)
                }
                group.addTask {
                    for (index, piece) in pieces.enumerated() {
                        if index > 0, pause > .zero { try? await Task.sleep(for: pause) }
                        guard !Task.isCancelled else { return .wrote(all: false) }
                        do {
                            try await outbound.write(ByteBuffer(bytes: piece))
                        } catch {
                            return .wrote(all: false)
                        }
                        if index == 0 { started() }
                    }
                    return .wrote(all: true)
                }
                var exchange = Exchange(answer: "", sentAll: false, closedAt: .now)
                while let side = try await group.next() {
                    switch side {
                    case .read(let answer, let closedAt):
                        exchange.answer = answer
                        exchange.closedAt = closedAt
                        // The server is done: stop the writer.
                        group.cancelAll()
                    case .wrote(let all):
                        exchange.sentAll = all
                    }
                }
                return exchange
            }
        }
    }

    /// One request written at once, with `Connection: close`; the answer is read to the close.
    static func request(_ address: Address, _ head: String, body: Data = Data()) async throws -> Exchange {
        try await exchange(address, [Data((head + "Connection: close\r\n\r\n").utf8) + body])
    }

    /// A POST of `body`, bytes as given, with its length.
    static func post(_ address: Address, _ path: APIPath, body: Data) async throws -> Exchange {
        try await request(
            address, "POST \(path.pattern) HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: \(body.count)\r\n",
            body: body)
    }
}
