import Testing

@testable import Student

@Suite struct HoldoutWeightsTests {
    @Test func eachStratumStandsForItsShareOfTheTraffic() throws {
        // The active student is confident on 20 of 100 logged answers, and on 60% of the traffic.
        let accepts = (0..<100).map { $0 < 20 }
        let weights = try #require(HoldoutWeights.poststratified(activeAccepts: accepts, activeCoverage: 0.6))
        #expect(weights.count == 100)
        let confident = zip(accepts, weights).filter(\.0).map(\.1).reduce(0, +)
        let total = weights.reduce(0, +)
        #expect(abs(total - 100) < 1e-9)
        #expect(abs(confident / total - 0.6) < 1e-9)
        #expect(weights[0] == 3 && weights[99] == 0.5)
    }

    @Test func nothingToWeighBackLeavesTheAnswersUnweighted() {
        #expect(HoldoutWeights.poststratified(activeAccepts: [true, true], activeCoverage: 0.5) == nil)
        #expect(HoldoutWeights.poststratified(activeAccepts: [false, false], activeCoverage: 0.5) == nil)
        #expect(HoldoutWeights.poststratified(activeAccepts: [true, false], activeCoverage: 0) == nil)
        #expect(HoldoutWeights.poststratified(activeAccepts: [true, false], activeCoverage: 1) == nil)
    }

    @Test func onlyTheTopShareOfWhatTheActiveStudentTrainedOnCountsAsConfident() {
        // 10 answers of its holdout, 3 of them confident; 20 it trained on, confident on 12 (confidence 0.99,
        // 0.98, …); 5 fresh ones, confident on all. Of the 20, only the 6 surest (30%) stay confident.
        let heldOut = [Bool](repeating: true, count: 10) + [Bool](repeating: false, count: 25)
        let trainedOn = [Bool](repeating: false, count: 10) + [Bool](repeating: true, count: 20) + [Bool](repeating: false, count: 5)
        let confident = (0..<10).map { $0 < 3 } + (0..<20).map { $0 < 12 } + [Bool](repeating: true, count: 5)
        let confidence = (0..<10).map { $0 < 3 ? Float(0.9) : 0.2 } + (0..<20).map { Float(0.99) - Float($0) / 100 }
            + [Float](repeating: 0.5, count: 5)
        let stratum = HoldoutWeights.confidentStratum(
            confidence: confidence, confident: confident, trainedOn: trainedOn, heldOut: heldOut)
        #expect(Array(stratum[..<10]) == Array(confident[..<10]))
        #expect(Array(stratum[10..<30]) == (0..<20).map { $0 < 6 })
        #expect(Array(stratum[30...]) == Array(confident[30...]))
        // With none of its holdout in the log, nothing is known of its fresh share: every answer is judged as it is.
        let noHoldout = [Bool](repeating: false, count: 35)
        #expect(
            HoldoutWeights.confidentStratum(confidence: confidence, confident: confident, trainedOn: trainedOn, heldOut: noHoldout)
                == confident)
    }
}
