/// One server-sent event: its `event:` name (if any) and its `data:` lines joined by newlines.
public struct ServerSentEvent: Sendable, Equatable {
    public var event: String?
    public var data: String

    public init(event: String? = nil, data: String) {
        self.event = event
        self.data = data
    }

    /// The sentinel OpenAI sends as the last event of a stream.
    public var isDone: Bool { data == "[DONE]" }

    /// The event in wire form, ending with the blank line that dispatches it.
    public var encoded: String {
        var out = ""
        if let event { out += "event: \(event)\n" }
        // A data line ends at any line break (LF, CRLF or CR): each becomes an LF on the other side.
        for line in data.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" || $0 == "\r" }) {
            out += "data: \(line)\n"
        }
        return out + "\n"
    }
}

/// Incremental parser for a `text/event-stream` body (the WHATWG rules OpenAI's streams follow):
/// feed it bytes as they arrive and it returns every event completed so far. Lines may end in
/// LF, CRLF or CR; comment lines (`:`) and unknown fields are ignored.
public struct ServerSentEventParser: Sendable {
    /// An upstream that never ends a line must not grow memory without bound.
    public let maximumEventBytes: Int

    private var line: [UInt8] = []
    private var dataLines: [String] = []
    private var dataBytes = 0
    private var eventName: String?
    private var lastWasCR = false

    public init(maximumEventBytes: Int = 4 << 20) {
        self.maximumEventBytes = maximumEventBytes
    }

    public enum ParseError: Error, Equatable {
        case eventTooLarge(limit: Int)
    }

    public mutating func feed(_ bytes: some Sequence<UInt8>) throws(ParseError) -> [ServerSentEvent] {
        var events: [ServerSentEvent] = []
        for byte in bytes {
            if lastWasCR {
                lastWasCR = false
                if byte == UInt8(ascii: "\n") { continue }
            }
            switch byte {
            case UInt8(ascii: "\n"), UInt8(ascii: "\r"):
                lastWasCR = byte == UInt8(ascii: "\r")
                if let event = endLine() { events.append(event) }
            default:
                line.append(byte)
                guard line.count + dataBytes <= maximumEventBytes else { throw .eventTooLarge(limit: maximumEventBytes) }
            }
        }
        return events
    }

    /// Handles a complete line; a blank line dispatches the event collected so far.
    private mutating func endLine() -> ServerSentEvent? {
        defer { line.removeAll(keepingCapacity: true) }
        if line.isEmpty {
            defer {
                dataLines.removeAll()
                dataBytes = 0
                eventName = nil
            }
            guard !dataLines.isEmpty else { return nil }
            return ServerSentEvent(event: eventName, data: dataLines.joined(separator: "\n"))
        }
        if line.first == UInt8(ascii: ":") { return nil }
        let colon = line.firstIndex(of: UInt8(ascii: ":")) ?? line.endIndex
        let field = String(decoding: line[..<colon], as: UTF8.self)
        var valueStart = colon < line.endIndex ? line.index(after: colon) : colon
        if valueStart < line.endIndex, line[valueStart] == UInt8(ascii: " ") { valueStart += 1 }
        let value = String(decoding: line[valueStart...], as: UTF8.self)
        switch field {
        case "data":
            dataLines.append(value)
            dataBytes += line.count
        case "event":
            eventName = value
        default:
            break
        }
        return nil
    }
}
