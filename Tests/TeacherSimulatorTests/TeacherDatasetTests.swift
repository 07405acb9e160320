import Foundation
import Testing
import TeacherSimulator

/// The Banking77 files beside the checkout (../shared/data).
let banking77 = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("../shared/data/banking77").standardized.path

@Suite struct TeacherDatasetTests {
    @Test func parsesQuotedCommasQuotesAndLineBreaks() throws {
        let rows = try CSV.parse("a,b\r\n\"x, y\",\"say \"\"hi\"\"\"\n\"two\nlines\",\n")
        #expect(rows == [["a", "b"], ["x, y", "say \"hi\""], ["two\nlines", ""]])
    }

    @Test func refusesAnUnterminatedQuote() {
        #expect(throws: CSVError.unterminatedQuote(row: 2)) { try CSV.parse("a\n\"open,b\n") }
    }

    @Test func loadsTheGPT4TeacherFile() throws {
        let dataset = try TeacherDataset.loadGPT4CSV(path: "\(banking77)/teacher_gpt4.csv")
        #expect(dataset.entries.count == 4081)
        let entry = try #require(dataset.lookup("How do I locate my card?"))
        #expect(entry.gold == "card_arrival" && entry.answer == "card_arrival")
        #expect(entry.top.count == 1 && entry.top[0].probability == 1)
        // The same text up to case and spacing finds the same entry.
        #expect(dataset.lookup("  how do I   LOCATE my card? ") == entry)
        #expect(dataset.lookup("What is the airspeed of an unladen swallow?") == nil)
    }

    @Test func loadsTheSoftLabelFileWithTopFiveBestFirst() throws {
        let dataset = try TeacherDataset.loadSoftJSONL(path: "\(banking77)/teacher_soft.jsonl")
        #expect(dataset.entries.count == 13083)
        for entry in dataset.entries.prefix(200) {
            #expect(entry.top.count == 5)
            #expect(entry.answer == entry.top[0].answer)
            #expect(zip(entry.top, entry.top.dropFirst()).allSatisfy { $0.probability >= $1.probability })
        }
    }

    @Test func reportsTheLineOfABadRecord() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("bad-\(UUID().uuidString).jsonl").path
        try Data("{\"text\":\"a\",\"top\":[[\"x\",1]]}\n{\"text\":\"b\",\"top\":[]}\n".utf8).write(to: URL(fileURLWithPath: path))
        #expect {
            try TeacherDataset.loadSoftJSONL(path: path)
        } throws: { error in
            "\(error)".hasPrefix("\(path):2:")
        }
    }
}
