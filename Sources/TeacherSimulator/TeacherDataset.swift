import DistillAPI
import Foundation

/// The answers the simulated teacher gives: a query's text → its answer and, for soft-label
/// data, the teacher's top classes with probabilities.
public struct TeacherDataset: Sendable {
    public struct Entry: Sendable, Equatable {
        /// The query, as the data set spells it.
        public var text: String
        /// The gold label, when the data set has one.
        public var gold: String?
        public var answer: String
        /// The teacher's most likely answers with their probabilities, best first (soft labels).
        public var top: [(answer: String, probability: Double)]

        public init(text: String, gold: String?, answer: String, top: [(answer: String, probability: Double)]) {
            self.text = text
            self.gold = gold
            self.answer = answer
            self.top = top
        }

        public static func == (a: Entry, b: Entry) -> Bool {
            a.text == b.text && a.gold == b.gold && a.answer == b.answer
                && a.top.map(\.answer) == b.top.map(\.answer) && a.top.map(\.probability) == b.top.map(\.probability)
        }
    }

    /// In file order.
    public let entries: [Entry]
    private let byText: [String: Int]
    private let byNormalizedText: [String: Int]

    public init(entries: [Entry]) {
        self.entries = entries
        var byText: [String: Int] = [:]
        var byNormalizedText: [String: Int] = [:]
        for (index, entry) in entries.enumerated() {
            byText[entry.text] = byText[entry.text] ?? index
            byNormalizedText[Self.normalize(entry.text)] = byNormalizedText[Self.normalize(entry.text)] ?? index
        }
        self.byText = byText
        self.byNormalizedText = byNormalizedText
    }

    /// The entry for a query: its exact text, else the same text up to case and spacing.
    public func lookup(_ text: String) -> Entry? {
        guard let index = byText[text] ?? byNormalizedText[Self.normalize(text)] else { return nil }
        return entries[index]
    }

    static func normalize(_ text: String) -> String {
        text.lowercased().split(whereSeparator: \.isWhitespace).joined(separator: " ")
    }

    /// `text,gold,teacher` with a header row (e.g. `teacher_gpt4.csv`): hard answers.
    public static func loadGPT4CSV(path: String) throws -> TeacherDataset {
        let rows = try CSV.parse(try readText(path))
        guard let header = rows.first, let text = header.firstIndex(of: "text"),
            let teacher = header.firstIndex(of: "teacher")
        else {
            throw DatasetError.badFormat(path: path, line: 1, reason: "the header must name 'text' and 'teacher' columns")
        }
        let gold = header.firstIndex(of: "gold")
        var entries: [Entry] = []
        for (number, row) in rows.dropFirst().enumerated() where row != [""] {
            guard row.count == header.count else {
                throw DatasetError.badFormat(
                    path: path, line: number + 2, reason: "expected \(header.count) fields, found \(row.count)")
            }
            entries.append(
                Entry(text: row[text], gold: gold.map { row[$0] }, answer: row[teacher], top: [(row[teacher], 1)]))
        }
        return TeacherDataset(entries: entries)
    }

    /// JSON Lines of `{"text","gold","top":[[answer, probability], …]}` (e.g. `teacher_soft.jsonl`):
    /// the answer is the top-1.
    public static func loadSoftJSONL(path: String) throws -> TeacherDataset {
        struct Line: Decodable {
            var text: String
            var gold: String?
            var top: [[JSONValue]]
        }
        var entries: [Entry] = []
        let decoder = JSONDecoder()
        for (number, line) in try readText(path).split(separator: "\n", omittingEmptySubsequences: false).enumerated()
        where !line.allSatisfy(\.isWhitespace) {
            let parsed: Line
            do {
                parsed = try decoder.decode(Line.self, from: Data(line.utf8))
            } catch {
                throw DatasetError.badFormat(path: path, line: number + 1, reason: "\(error)")
            }
            let top = parsed.top.compactMap { pair -> (String, Double)? in
                guard pair.count == 2, let answer = pair[0].stringValue, let p = pair[1].doubleValue else { return nil }
                return (answer, p)
            }
            guard top.count == parsed.top.count, let best = top.first else {
                throw DatasetError.badFormat(
                    path: path, line: number + 1, reason: "'top' must be a non-empty list of [answer, probability]")
            }
            entries.append(Entry(text: parsed.text, gold: parsed.gold, answer: best.0, top: top))
        }
        return TeacherDataset(entries: entries)
    }

    private static func readText(_ path: String) throws -> String {
        guard let data = FileManager.default.contents(atPath: path) else { throw DatasetError.unreadable(path: path) }
        guard let text = String(validating: data, as: UTF8.self) else {
            throw DatasetError.badFormat(path: path, line: 0, reason: "not UTF-8")
        }
        return text
    }
}

public enum DatasetError: Error, CustomStringConvertible {
    case unreadable(path: String)
    case badFormat(path: String, line: Int, reason: String)

    public var description: String {
        switch self {
        case .unreadable(let path): "cannot read \(path)"
        case .badFormat(let path, let line, let reason): "\(path):\(line): \(reason)"
        }
    }
}

/// RFC 4180 CSV: fields separated by commas, optionally quoted; inside quotes, `""` is a quote
/// and commas and line breaks are literal.
public enum CSV {
    public static func parse(_ text: String) throws -> [[String]] {
        var rows: [[String]] = []
        var row: [String] = []
        var field = ""
        var inQuotes = false
        var iterator = text.unicodeScalars.makeIterator()
        var pending = iterator.next()
        while let scalar = pending {
            pending = iterator.next()
            if inQuotes {
                if scalar == "\"" {
                    if pending == "\"" {
                        field.unicodeScalars.append("\"")
                        pending = iterator.next()
                    } else {
                        inQuotes = false
                    }
                } else {
                    field.unicodeScalars.append(scalar)
                }
                continue
            }
            switch scalar {
            case "\"" where field.isEmpty:
                inQuotes = true
            case ",":
                row.append(field)
                field = ""
            case "\r" where pending == "\n":
                break
            case "\n", "\r":
                row.append(field)
                rows.append(row)
                row = []
                field = ""
            default:
                field.unicodeScalars.append(scalar)
            }
        }
        guard !inQuotes else { throw CSVError.unterminatedQuote(row: rows.count + 1) }
        if !field.isEmpty || !row.isEmpty {
            row.append(field)
            rows.append(row)
        }
        return rows
    }
}

public enum CSVError: Error, Equatable {
    case unterminatedQuote(row: Int)
}
