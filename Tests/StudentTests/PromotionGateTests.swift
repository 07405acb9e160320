import Testing

import Student

@Suite struct PromotionGateTests {
    let gate = PromotionGate()

    /// `count` held-out requests, of which the student accepts those at `accepted` and gets all but the first
    /// `wrong` of them right.
    static func outcomes(_ count: Int, accepting accepted: Range<Int>, wrong: Int = 0, weight: Double = 1) -> [HeldOutOutcome] {
        (0..<count).map { index in
            HeldOutOutcome(
                accepted: accepted.contains(index), agrees: !accepted.contains(index) || index - accepted.lowerBound >= wrong,
                weight: weight)
        }
    }

    /// 600 holdout requests; accepts 400 of them, 384 rightly (96%).
    let active = Self.outcomes(600, accepting: 0..<400, wrong: 16)

    @Test func theFirstStudentNeedsOnlyToMeetTheTarget() {
        #expect(gate.decide(candidate: active, active: nil) == .promote(.noActiveStudent))
        // Its τ has already shown the target on the holdout and the cross-fitted training answers: a few accepted
        // answers on the holdout alone are not held against it, an observed share under the target within noise
        // (94.75% of 400) neither; none, or one beyond noise (90% of 400), is.
        #expect(gate.decide(candidate: Self.outcomes(600, accepting: 0..<20), active: nil) == .promote(.noActiveStudent))
        let close = Self.outcomes(600, accepting: 0..<400, wrong: 21)
        #expect(gate.decide(candidate: close, active: nil) == .promote(.noActiveStudent))
        #expect(gate.decide(candidate: Self.outcomes(600, accepting: 0..<0), active: nil) == .reject(.candidateAcceptsNothing))
        let wrong = Self.outcomes(600, accepting: 0..<400, wrong: 40)
        #expect(gate.decide(candidate: wrong, active: nil) == .reject(.candidateBelowTarget))
    }

    @Test func moreCoverageAtTheSameAgreementIsPromoted() {
        let candidate = Self.outcomes(600, accepting: 0..<450, wrong: 18)
        #expect(gate.decide(candidate: candidate, active: active) == .promote(.moreCoverage))
        #expect(gate.decide(candidate: candidate, active: active).promotes)
        // The reverse is not.
        #expect(gate.decide(candidate: active, active: candidate) == .reject(.notEnoughCoverageGain))
    }

    @Test func aSmallGainIsChurn() {
        // Five requests more, but 105 others for 100 of the active's.
        let candidate = Self.outcomes(600, accepting: 100..<505, wrong: 16)
        #expect(gate.decide(candidate: candidate, active: active) == .reject(.notEnoughCoverageGain))
        #expect(gate.decide(candidate: active, active: active) == .reject(.notEnoughCoverageGain))
    }

    @Test func theCoverageMarginShrinksAsTheHoldoutGrows() {
        // 54% against 50%, overlapping on a quarter of the requests: within the noise of 300 requests (a margin of
        // 7 points), not of 3,000 (2.2).
        func decide(_ count: Int) -> PromotionDecision {
            let active = Self.outcomes(count, accepting: 0..<count / 2, wrong: count / 100)
            let candidate = Self.outcomes(count, accepting: count / 4..<count / 4 + count * 54 / 100, wrong: count / 100)
            return gate.decide(candidate: candidate, active: active)
        }
        #expect(decide(300) == .reject(.notEnoughCoverageGain))
        #expect(decide(3000) == .promote(.moreCoverage))
        // With no noise at all (both accept everything or nothing), any gain counts and none does not.
        let all = Self.outcomes(300, accepting: 0..<300, wrong: 6), none = Self.outcomes(300, accepting: 0..<0)
        #expect(gate.decide(candidate: all, active: none) == .promote(.moreCoverage))
        #expect(gate.decide(candidate: all, active: all) == .reject(.notEnoughCoverageGain))
    }

    @Test func aGainOnTheSameRequestsIsLessNoisy() {
        // 54% against 50% of 300: a gain when the candidate accepts every request the active does and 12 more, not
        // when it swaps 60 of them for 72 others.
        let active = Self.outcomes(300, accepting: 0..<150, wrong: 3)
        #expect(gate.decide(candidate: Self.outcomes(300, accepting: 0..<162, wrong: 3), active: active) == .promote(.moreCoverage))
        #expect(
            gate.decide(candidate: Self.outcomes(300, accepting: 60..<222, wrong: 3), active: active)
                == .reject(.notEnoughCoverageGain))
    }

    @Test func agreementAboveTheTargetIsNotCompared() {
        // A flawless active student of 400 against a candidate of 500 at 95.4%: both hold the target, and the
        // candidate answers more.
        let flawless = Self.outcomes(600, accepting: 0..<400)
        let candidate = Self.outcomes(600, accepting: 0..<500, wrong: 23)
        #expect(gate.decide(candidate: candidate, active: flawless) == .promote(.moreCoverage))
    }

    @Test func anActiveStudentBelowTheTargetIsReplacedByOneThatMeetsIt() {
        let failing = Self.outcomes(600, accepting: 0..<400, wrong: 60)
        let modest = Self.outcomes(600, accepting: 0..<100, wrong: 3)
        #expect(gate.decide(candidate: modest, active: failing) == .promote(.activeBelowTarget))
        // An active student that answers nothing is beaten by any coverage that meets the target.
        let silent = Self.outcomes(600, accepting: 0..<0)
        #expect(gate.decide(candidate: modest, active: silent) == .promote(.moreCoverage))
    }

    @Test func weightsDecideAgreementAndTheEffectiveCount() {
        // 100 accepted, 12 of them wrong: 88% unweighted, below the target beyond noise. The 60 right ones stand
        // for 2 requests each and the 40 others for half a request: 95.7% of the traffic.
        let heavy = Self.outcomes(60, accepting: 0..<60, weight: 2), light = Self.outcomes(40, accepting: 0..<40, wrong: 12, weight: 0.5)
        let unweighted = (heavy + light).map { HeldOutOutcome(accepted: $0.accepted, agrees: $0.agrees) }
        #expect(gate.decide(candidate: unweighted, active: nil) == .reject(.candidateBelowTarget))
        #expect(gate.decide(candidate: heavy + light, active: nil) == .promote(.noActiveStudent))
        // 90% of 100 is below the target beyond noise; the same 90% with 10 answers standing for 10 requests each
        // has an effective count of 33, and is not.
        let even = Self.outcomes(100, accepting: 0..<100, wrong: 10)
        #expect(gate.decide(candidate: even, active: nil) == .reject(.candidateBelowTarget))
        let lopsided = Self.outcomes(10, accepting: 0..<10, wrong: 1, weight: 10) + Self.outcomes(90, accepting: 0..<90, wrong: 9)
        #expect(TrafficEstimate(lopsided).acceptedAgreement.share == TrafficEstimate(even).acceptedAgreement.share)
        #expect(TrafficEstimate(lopsided).acceptedAgreement.effectiveCount < 34)
        #expect(gate.decide(candidate: lopsided, active: nil) == .promote(.noActiveStudent))
    }

    @Test func decisionsExplainThemselves() {
        #expect(PromotionDecision.reject(.candidateBelowTarget).description.hasPrefix("reject: "))
        #expect(!PromotionDecision.reject(.candidateBelowTarget).promotes)
    }
}
