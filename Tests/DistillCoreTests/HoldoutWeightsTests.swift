import Testing

@testable import DistillCore

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
}
