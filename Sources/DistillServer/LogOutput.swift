import DistillAPI
import Foundation
import Logging

/// How distilld writes its log records to stderr (`log.format`).
public enum LogFormat: String, Sendable, Equatable {
    /// swift-log's line: time, level, label, message and metadata, for a person reading it.
    case text
    /// One JSON object per line, for a log shipper: `time`, `level`, `label`, `message`, `metadata`.
    case json
}

/// The handler of every logger distilld makes, as the configuration says.
public func makeLogHandler(label: String, log: DistillConfig.Log) -> any LogHandler {
    var handler: any LogHandler =
        switch log.format {
        case .text: TextLogHandler(StreamLogHandler.standardError(label: label))
        case .json: JSONLogHandler(label: label, write: JSONLogHandler.standardError)
        }
    handler.logLevel = Logger.Level(rawValue: log.level) ?? .info
    return handler
}

/// swift-log's `StreamLogHandler` (its lines unchanged), given its metadata only when it writes a
/// record: it formats its metadata whenever a key is set, and Hummingbird sets one on every
/// request's logger, which cost a thirtieth of an exact cache hit even with nothing logged.
public struct TextLogHandler: LogHandler {
    private var lines: StreamLogHandler
    public var metadata: Logger.Metadata = [:]

    public init(_ lines: StreamLogHandler) {
        self.lines = lines
    }

    public var logLevel: Logger.Level {
        get { lines.logLevel }
        set { lines.logLevel = newValue }
    }

    public var metadataProvider: Logger.MetadataProvider? {
        get { lines.metadataProvider }
        set { lines.metadataProvider = newValue }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var lines = self.lines
        lines.metadata = metadata
        lines.log(event: event)
    }
}

/// Writes each record as one line of JSON, e.g.
/// `{"label":"distilld","level":"info","message":"listening on …","metadata":{…},"time":"2026-…Z"}`.
/// Metadata keeps its structure (strings, arrays, objects); the time is UTC with milliseconds.
public struct JSONLogHandler: LogHandler {
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    private let label: String
    private let write: @Sendable (String) -> Void

    /// `write` receives each line, its newline included.
    public init(label: String, write: @escaping @Sendable (String) -> Void) {
        self.label = label
        self.write = write
    }

    /// One `write(2)` per line, so that lines from concurrent tasks never interleave.
    public static let standardError: @Sendable (String) -> Void = { line in
        FileHandle.standardError.write(Data(line.utf8))
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var all = metadataProvider?.get() ?? [:]
        all.merge(metadata) { $1 }
        all.merge(event.metadata ?? [:]) { $1 }
        var record: [String: JSONValue] = [
            "time": .string(Date().formatted(Self.timeFormat)),
            "level": .string(event.level.rawValue),
            "label": .string(label),
            "message": .string(event.message.description),
        ]
        if !all.isEmpty { record["metadata"] = Self.json(.dictionary(all)) }
        if let error = event.error { record["error"] = .string("\(error)") }
        write(JSONValue.object(record).encodedString + "\n")
    }

    private static let timeFormat = Date.ISO8601FormatStyle(includingFractionalSeconds: true)

    private static func json(_ value: Logger.MetadataValue) -> JSONValue {
        switch value {
        case .string(let string): .string(string)
        case .stringConvertible(let value): .string(value.description)
        case .array(let values): .array(values.map(json))
        case .dictionary(let values): .object(values.mapValues(json))
        }
    }
}
