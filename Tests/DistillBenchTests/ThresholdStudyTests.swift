import Embedding
import Foundation
import TeacherSimulator
import Testing

@testable import distill_bench

/// The static threshold the verified cache replaced (0.925), held to the measurement it was chosen from.
@Suite struct ThresholdStudyTests {
    @Test func theStaticThresholdServesFewWrongAnswersOnBanking77() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..").standardized
        let rows = try CSV.parse(String(contentsOf: root.appendingPathComponent("../shared/data/banking77/test.csv"), encoding: .utf8))
        let queries = rows.dropFirst().filter { $0.count == 2 }
        #expect(queries.count == 3080)
        let encoder = try BertEncoder(modelDirectory: root.appendingPathComponent("models/all-MiniLM-L6-v2"))
        let vectors = encoder.embed(queries.map { $0[0] })

        let threshold = 0.925
        let study = ThresholdStudy.run(vectors: vectors, labels: queries.map { $0[1] }, thresholds: [0.8, threshold], seed: 1)
        let loose = study[0]
        let chosen = study[1]
        #expect(chosen.wrongRate <= 0.01, "at most 1 request in 100 answered with another intent's answer")
        #expect(chosen.precision >= 0.95)
        #expect(chosen.hitRate >= 0.1, "and paraphrases still hit")
        #expect(loose.wrongRate > 2 * chosen.wrongRate, "a lower threshold costs wrong answers")
        #expect(loose.hitRate > chosen.hitRate)
    }
}
