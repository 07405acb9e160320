import Testing

import Student

@Suite struct PromotionGateTests {
    let gate = PromotionGate()
    /// 600 holdout requests; accepts 400 of them, 384 rightly (96%).
    let active = HoldoutMetrics(count: 600, agreeing: 560, accepted: 400, agreeingAccepted: 384)

    @Test func theFirstStudentNeedsOnlyToMeetTheTarget() {
        #expect(gate.decide(candidate: active, active: nil) == .promote(.noActiveStudent))
        let few = HoldoutMetrics(count: 600, agreeing: 500, accepted: 49, agreeingAccepted: 49)
        #expect(gate.decide(candidate: few, active: nil) == .reject(.candidateAnswersTooFew))
        let wrong = HoldoutMetrics(count: 600, agreeing: 500, accepted: 400, agreeingAccepted: 379)
        #expect(gate.decide(candidate: wrong, active: nil) == .reject(.candidateBelowTarget))
    }

    @Test func moreCoverageAtTheSameAgreementIsPromoted() {
        let candidate = HoldoutMetrics(count: 600, agreeing: 565, accepted: 450, agreeingAccepted: 432)
        #expect(gate.decide(candidate: candidate, active: active) == .promote(.moreCoverage))
        #expect(gate.decide(candidate: candidate, active: active).promotes)
        // The reverse is not.
        #expect(gate.decide(candidate: active, active: candidate) == .reject(.notEnoughCoverageGain))
    }

    @Test func aSmallGainIsChurn() {
        let candidate = HoldoutMetrics(count: 600, agreeing: 560, accepted: 405, agreeingAccepted: 389)
        #expect(gate.decide(candidate: candidate, active: active) == .reject(.notEnoughCoverageGain))
        #expect(gate.decide(candidate: active, active: active) == .reject(.notEnoughCoverageGain))
    }

    @Test func theCoverageMarginShrinksAsTheHoldoutGrows() {
        // 50% against 54% (not known on which requests): within the noise of 300 requests (a margin of 9.7 points),
        // not of 3,000 (3.1).
        func metrics(_ count: Int, coverage: Double) -> HoldoutMetrics {
            let accepted = Int(Double(count) * coverage)
            return HoldoutMetrics(count: count, agreeing: accepted, accepted: accepted, agreeingAccepted: accepted * 49 / 50)
        }
        #expect(gate.decide(candidate: metrics(300, coverage: 0.54), active: metrics(300, coverage: 0.5)) == .reject(.notEnoughCoverageGain))
        #expect(gate.decide(candidate: metrics(3000, coverage: 0.54), active: metrics(3000, coverage: 0.5)) == .promote(.moreCoverage))
        // With no noise at all (both accept everything or nothing), any gain counts and none does not.
        #expect(gate.decide(candidate: metrics(300, coverage: 1), active: metrics(300, coverage: 0)) == .promote(.moreCoverage))
        #expect(gate.decide(candidate: metrics(300, coverage: 1), active: metrics(300, coverage: 1)) == .reject(.notEnoughCoverageGain))
    }

    @Test func aGainOnTheSameRequestsIsLessNoisy() {
        // 54% against 50% of 300: noise when the two may accept different requests, not when the candidate
        // accepts every request the active does and 12 more.
        let active = HoldoutMetrics(count: 300, agreeing: 280, accepted: 150, agreeingAccepted: 147)
        let candidate = HoldoutMetrics(count: 300, agreeing: 280, accepted: 162, agreeingAccepted: 159)
        #expect(gate.decide(candidate: candidate, active: active) == .reject(.notEnoughCoverageGain))
        #expect(gate.decide(candidate: candidate, active: active, acceptedByBoth: 150) == .promote(.moreCoverage))
        // Swapping 60 requests for 72 others is not.
        #expect(gate.decide(candidate: candidate, active: active, acceptedByBoth: 90) == .reject(.notEnoughCoverageGain))
    }

    @Test func lessAgreementBeyondNoiseIsRejectedWhateverTheCoverage() {
        let flawless = HoldoutMetrics(count: 600, agreeing: 590, accepted: 400, agreeingAccepted: 400)
        let candidate = HoldoutMetrics(count: 600, agreeing: 560, accepted: 500, agreeingAccepted: 477)
        #expect(gate.decide(candidate: candidate, active: flawless) == .reject(.lessAgreement))
        // Within noise it is not.
        let close = HoldoutMetrics(count: 600, agreeing: 560, accepted: 400, agreeingAccepted: 388)
        #expect(gate.decide(candidate: candidate, active: close) == .promote(.moreCoverage))
    }

    @Test func anActiveStudentBelowTheTargetIsReplacedByOneThatMeetsIt() {
        let failing = HoldoutMetrics(count: 600, agreeing: 500, accepted: 400, agreeingAccepted: 340)
        let modest = HoldoutMetrics(count: 600, agreeing: 500, accepted: 100, agreeingAccepted: 97)
        #expect(gate.decide(candidate: modest, active: failing) == .promote(.activeBelowTarget))
        // An active student that answers nothing is beaten by any coverage that meets the target.
        let silent = HoldoutMetrics(count: 600, agreeing: 500, accepted: 0, agreeingAccepted: 0)
        #expect(gate.decide(candidate: modest, active: silent) == .promote(.moreCoverage))
    }

    @Test func decisionsExplainThemselves() {
        #expect(PromotionDecision.reject(.lessAgreement).description.hasPrefix("reject: "))
        #expect(!PromotionDecision.reject(.lessAgreement).promotes)
    }
}
