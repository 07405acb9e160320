@testable import CacheVerification
import SeededRandom
import Testing

/// The student's second opinion on seeded streams of seconded candidates whose wrong rate is known.
@Suite struct SecondOpinionTests {
    /// 95% one-sided, as the verifier's default.
    static let z = 1.6448536269514722

    struct Outcome {
        var served = 0
        var wrongServed = 0
        var audits = 0
        /// The seconded candidate at which serving began (nil: never).
        var firstServed: Int?
    }

    /// `count` seconded candidates, each wrong with probability `wrongRate(i)`; those not served teach the rate.
    static func stream(count: Int, maxWrongRate: Double = 0.05, seed: UInt64, wrongRate: (Int) -> Double) -> Outcome {
        var generator = SplitMix64(seed: seed)
        var opinion = SecondOpinion()
        var outcome = Outcome()
        for i in 0..<count {
            let wrong = Double.random(in: 0..<1, using: &generator) < wrongRate(i)
            switch opinion.decide(maxWrongRate: maxWrongRate, z: z, draw: Double.random(in: 0..<1, using: &generator)) {
            case .serve:
                outcome.served += 1
                if wrong { outcome.wrongServed += 1 }
                if outcome.firstServed == nil { outcome.firstServed = i }
            case .audit:
                outcome.audits += 1
                opinion.learn(wrong: wrong)
            case .learn:
                opinion.learn(wrong: wrong)
            }
        }
        return outcome
    }

    @Test func agreementsRightOftenEnoughAreServedAndTheRestAreNot() throws {
        for seed: UInt64 in 1...5 {
            // 1% wrong: served after a few dozen lessons (no wrong one: 52), with a tenth audited.
            let good = Self.stream(count: 5_000, seed: seed) { _ in 0.01 }
            #expect(try #require(good.firstServed) < 200, "seed \(seed)")
            #expect(good.served > 4_000 && good.wrongServed < good.served / 20, "seed \(seed): \(good)")
            let audited = Double(good.audits) / Double(good.served + good.audits)
            #expect(abs(audited - SecondOpinion.auditShare) < 0.02, "seed \(seed): \(audited)")
            // 15% wrong, three times δ: never served.
            let bad = Self.stream(count: 5_000, seed: seed) { _ in 0.15 }
            #expect(bad.served == 0, "seed \(seed): \(bad)")
        }
    }

    @Test func servingStopsWhenTheAgreementsGoWrong() {
        // 1% wrong for 3,000, then 20%: the audits' lessons take the bound above δ and serving stops.
        for seed: UInt64 in 1...5 {
            var generator = SplitMix64(seed: seed)
            var opinion = SecondOpinion()
            var servedAfterDrop = 0
            for i in 0..<8_000 {
                let wrong = Double.random(in: 0..<1, using: &generator) < (i < 3_000 ? 0.01 : 0.2)
                switch opinion.decide(maxWrongRate: 0.05, z: Self.z, draw: Double.random(in: 0..<1, using: &generator)) {
                case .serve: if i >= 3_000 { servedAfterDrop += 1 }
                case .audit, .learn: opinion.learn(wrong: wrong)
                }
            }
            // Wrong audits at 20% of a tenth of the served: the bound crosses δ within a few hundred.
            #expect(servedAfterDrop < 1_000, "seed \(seed): \(servedAfterDrop)")
            #expect(opinion.upperBound(z: Self.z) > 0.05)
        }
    }

    @Test func theBoundIsWilsons() {
        var opinion = SecondOpinion()
        #expect(opinion.upperBound(z: Self.z) == 1)
        for _ in 0..<100 { opinion.learn(wrong: false) }
        // 100 lessons (less the decay): z²/(n + z²) ≈ 2.7/(90.5 + 2.7).
        #expect(abs(opinion.upperBound(z: Self.z) - Self.z * Self.z / (opinion.lessons + Self.z * Self.z)) < 1e-12)
        #expect(opinion.lessons < 100 && opinion.lessons > 90)
    }
}
