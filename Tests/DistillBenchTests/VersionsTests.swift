import Student
import Foundation
import Storage
import Testing

@testable import distill_bench

@Suite struct VersionsTests {
    @Test func aVersionIsScoredAtItsThresholdAndAtTheTarget() {
        // Accepted at τ: the three surest, two of them right. At a 75% target the four surest (ties together)
        // still agree enough, the five do not.
        let score = VersionScore(
            confidences: [0.9, 0.9, 0.8, 0.7, 0.6], confident: [true, true, true, false, false],
            agrees: [true, true, false, true, false], target: 0.75)
        #expect(score.coverage == 0.6 && score.agreement == 2.0 / 3 && score.coverageAtTarget == 0.8)
        let none = VersionScore(confidences: [0.5, 0.4], confident: [false, false], agrees: [false, true], target: 0.75)
        #expect(none.agreement == nil && none.coverage == 0 && none.coverageAtTarget == 0)
    }

    @Test func theTrainedPromptsAreTheReadAnswersItsFoldDidNotHoldOut() {
        // Ten answers, the fourth without one; the version read the newest 5 through id 8: q3, q5, q6, q7, q8.
        let log = (1...10).map { n in
            var record = TeacherLogRecord(
                createdAt: Date(), requestID: "r\(n)", scope: "s", model: "m", messages: "[]", parameters: "{}",
                prompt: "q\(n)", answer: n == 4 ? "" : "a", topLogprobs: nil, promptTokens: nil, completionTokens: nil,
                latencyMilliseconds: 1, streamed: false)
            record.id = Int64(n)
            return record
        }
        let fold = HoldoutFold(share: 0.2)
        let trained = VersionsBenchmark.trainedPrompts(log: log, through: 8, rows: 5, fold: fold)
        let read: Set = ["q3", "q5", "q6", "q7", "q8"]
        let heldOut = read.filter { fold.holdsOut($0, rows: 5) }
        #expect(trained.isSubset(of: read) && trained.isDisjoint(with: heldOut))
        #expect(trained.union(heldOut) == read)
    }
}
