import ArgumentParser
import Embedding
import Foundation
import TeacherSimulator

/// The measurement behind the default `cache.similarity_threshold`.
struct CacheThresholdBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cache-threshold",
        abstract: "Cache hits and wrong answers by similarity threshold, on labelled queries.",
        discussion: """
            The queries of a text,category CSV arrive once each in a seeded order; a query is served
            from the nearest earlier miss when at least as similar as the threshold (wrong when the
            categories differ), else it misses and is cached.
            """)

    @Option(help: "A CSV with text and category columns.") var data = "../shared/data/banking77/test.csv"
    @Option(help: "The embedding model directory.") var model = "models/all-MiniLM-L6-v2"
    @Option(help: "Seed of the arrival order.") var seed: UInt64 = 1
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let rows = try CSV.parse(String(contentsOfFile: data, encoding: .utf8))
        guard let header = rows.first, let text = header.firstIndex(of: "text"), let category = header.firstIndex(of: "category") else {
            throw ValidationError("\(data) needs text and category columns")
        }
        let queries = rows.dropFirst().filter { $0.count == header.count }
        let encoder = try BertEncoder(modelDirectory: URL(fileURLWithPath: model))
        FileHandle.standardError.write(Data("embedding \(queries.count) queries…\n".utf8))
        let vectors = encoder.embed(queries.map { $0[text] })
        let thresholds = (0...7).map { 0.8 + 0.025 * Double($0) }
        let study = ThresholdStudy.run(vectors: vectors, labels: queries.map { $0[category] }, thresholds: thresholds, seed: seed)
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(study), as: UTF8.self))
            return
        }
        print("threshold  hit rate  wrong rate  precision  different-intent pairs ≥ threshold")
        for row in study {
            print(String(format: "%9.3f  %8.4f  %10.4f  %9.4f  %.6f", row.threshold, row.hitRate, row.wrongRate, row.precision, row.differentLabelPairRate))
        }
    }
}
