import DistillAPI
import Foundation
import Logging
import Synchronization
import Testing

@testable import DistillServer

@Suite struct LogOutputTests {
    /// A logger whose JSON lines are kept.
    func jsonLogger(level: Logger.Level = .info) -> (Logger, LogCapture) {
        let capture = LogCapture()
        var handler = JSONLogHandler(label: "distilld.test") { capture.append($0) }
        handler.logLevel = level
        var logger = Logger(label: "distilld.test") { _ in handler }
        logger[metadataKey: "distill.listener"] = "http"
        return (logger, capture)
    }

    @Test func eachRecordIsOneJSONObjectOnOneLine() throws {
        let (logger, capture) = jsonLogger()
        logger.warning(
            "teacher call failed\nsecond line \"quoted\"",
            metadata: [
                "distill.request_id": "r-1", "distill.attempts": .stringConvertible(3),
                "distill.scopes": ["a", "b"], "distill.nested": ["k": "v"],
            ])
        logger.debug("below the level")
        let lines = capture.lines
        try #require(lines.count == 1)
        #expect(lines[0].hasSuffix("\n") && lines[0].dropLast().allSatisfy { $0 != "\n" })
        let record = try JSONValue.parse(Data(lines[0].utf8))
        #expect(record["level"] == "warning")
        #expect(record["label"] == "distilld.test")
        #expect(record["message"] == "teacher call failed\nsecond line \"quoted\"")
        #expect(
            record["metadata"]
                == [
                    "distill.listener": "http", "distill.request_id": "r-1", "distill.attempts": "3", "distill.scopes": ["a", "b"],
                    "distill.nested": ["k": "v"],
                ])
        let time = try #require(record["time"]?.stringValue)
        #expect(try Date(time, strategy: Date.ISO8601FormatStyle(includingFractionalSeconds: true)).timeIntervalSinceNow.magnitude < 3600)
        #expect(time.hasSuffix("Z"))
    }

    @Test func aRecordWithoutMetadataHasNoMetadataField() throws {
        let capture = LogCapture()
        let logger = Logger(label: "l") { _ in JSONLogHandler(label: "l") { capture.append($0) } }
        logger.info("starting")
        let record = try JSONValue.parse(Data(try #require(capture.lines.first).utf8))
        #expect(record.objectValue?.keys.sorted() == ["label", "level", "message", "time"])
    }

    @Test func theConfigurationChoosesTheFormatAndLevel() {
        var log = DistillConfig.Log()
        log.level = "warning"
        log.format = .json
        let handler = makeLogHandler(label: "x", log: log)
        #expect(handler is JSONLogHandler)
        #expect(handler.logLevel == .warning)
        log.format = .text
        #expect(makeLogHandler(label: "x", log: log) is TextLogHandler)
    }

    @Test func theTextFormatIsSwiftLogsStreamLine() throws {
        /// A text stream into a `LogCapture`.
        struct Lines: TextOutputStream, Sendable {
            let capture = LogCapture()
            func write(_ string: String) { capture.append(string) }
        }
        let (plain, wrapped) = (Lines(), Lines())
        var loggers = [
            Logger(label: "distilld", factory: { StreamLogHandler(label: $0, stream: plain, metadataProvider: nil) }),
            Logger(label: "distilld", factory: { TextLogHandler(StreamLogHandler(label: $0, stream: wrapped, metadataProvider: nil)) }),
        ]
        for index in loggers.indices {
            loggers[index][metadataKey: "hb.request.id"] = "7"
            loggers[index].warning("slow", metadata: ["distill.scope": "ab"])
        }
        // The same line after the time stamp (which may have ticked in between).
        let lines = try [plain, wrapped].map { String(try #require($0.capture.lines.first).drop { $0 != " " }) }
        #expect(lines[0] == lines[1])
        #expect(lines[1].contains("hb.request.id=7") && lines[1].contains("distill.scope=ab"))
    }
}
