@testable import CacheVerification
import Foundation
import SeededRandom
import TestSupport
import Testing

/// The verifier on seeded streams whose wrong rates are known: what it serves stays under δ.
/// Serialized: each stream is seconds of CPU on a thread of its own, and eleven at once would take both
/// cores from the suites that wait on a loopback server.
@Suite(.serialized) struct CacheVerifierTests {
    /// A scope's traffic: lookups with a similarity and maybe a negation mismatch, against a pool
    /// of entries; whether serving is wrong is drawn from `wrongRate` and the entry's own offset.
    struct Traffic {
        var lookups = 20_000
        var entries = 300
        /// P(wrong) of a candidate at this similarity, negation mismatch or not, plus the entry's offset (logit).
        var wrongRate: @Sendable (_ similarity: Double, _ negation: Bool, _ entryOffset: Double) -> Double

        struct Outcome {
            var lookups = 0
            var hits = 0
            var wrongHits = 0
            /// Σ of the true P(wrong) of the hits served: the wrong hits expected, without the draw's noise.
            var expectedWrongHits = 0.0
            var explorations = 0
            var audits = 0
            var mostAuditsOverBudget = 0.0
            /// Explorations (audits included) beyond `explorationShare` of the lookups so far, at most.
            var mostExploredOverBudget = 0.0
        }

        /// The whole stream, on a thread of its own (20,000 lookups are seconds of CPU in a debug build).
        func run(_ configuration: CacheVerifier.Configuration, seed: UInt64) async -> Outcome {
            await onOwnThread { simulate(configuration, seed: seed) }
        }

        func simulate(_ configuration: CacheVerifier.Configuration, seed: UInt64) -> Outcome {
            var generator = SplitMix64(seed: seed)
            let verifier = CacheVerifier(configuration)
            var scope = verifier.newScope()
            let offsets = (0..<entries).map { _ in 0.6 * (generator.nextUnit() - 0.5) }
            var beliefs = Array(repeating: verifier.newEntry(), count: entries)
            var outcome = Outcome()
            for _ in 0..<lookups {
                let entry = Int(generator.next() % UInt64(entries))
                let similarity = 0.7 + 0.3 * generator.nextUnit()
                let negation = generator.nextUnit() < 0.1
                let probability = wrongRate(similarity, negation, offsets[entry])
                let wrong = generator.nextUnit() < probability
                let candidate = Candidate(similarity: Float(similarity), runnerUpSimilarity: nil, mismatch: Mismatch(negation: negation))
                let verdict = verifier.decide(candidate, scope: &scope, entry: beliefs[entry], draw: generator.nextUnit())
                outcome.lookups += 1
                if verdict.decision == .serve {
                    outcome.hits += 1
                    outcome.expectedWrongHits += probability
                    if wrong { outcome.wrongHits += 1 }
                }
                if verdict.decision == .explore { outcome.explorations += 1 }
                if verdict.isAudit { outcome.audits += 1 }
                if verdict.teaches { beliefs[entry] = verifier.learn(verdict, wrong: wrong, scope: &scope, entry: beliefs[entry]) }
                outcome.mostAuditsOverBudget = max(outcome.mostAuditsOverBudget, Double(outcome.audits) - configuration.auditShare * Double(outcome.lookups))
                outcome.mostExploredOverBudget = max(
                    outcome.mostExploredOverBudget, Double(outcome.explorations) - configuration.explorationShare * Double(outcome.lookups))
            }
            return outcome
        }
    }

    static func logistic(_ x: Double) -> Double { 1 / (1 + exp(-x)) }

    /// Wrong more often the less similar; a negation mismatch is wrong 80% of the time.
    static var typical: Traffic {
        Traffic { similarity, negation, offset in negation ? 0.8 : logistic(-5 + 1.6 * (1 - similarity) / 0.05 + offset) }
    }

    /// This traffic's wrong rate is a logistic curve, whose tail is heavier than the probit model's:
    /// at δ = 1% the hits served are wrong at up to 1.3% in expectation (when each hit alone had to
    /// be within δ: 1.05%), `allowance` × δ. On real data, `distill-bench cache-precision` measures it.
    @Test(arguments: [(0.01, 1.35), (0.02, 1), (0.05, 1)])
    func servesUnderTheBoundOnTypicalTraffic(maxWrongRate: Double, allowance: Double) async {
        for seed: UInt64 in 1...3 {
            let outcome = await Self.typical.run(CacheVerifier.Configuration(maxWrongRate: maxWrongRate), seed: seed)
            // The bound is on the rate the served hits are wrong at (Σ of their true P(wrong)); the
            // wrong hits drawn from it may exceed it by chance, within the binomial's noise.
            let expected = outcome.expectedWrongHits / Double(max(outcome.hits, 1))
            #expect(expected <= allowance * maxWrongRate, "seed \(seed): expected \(expected) wrong per hit")
            let drawn = Double(outcome.wrongHits) / Double(max(outcome.hits, 1))
            let noise = 2 * (expected * (1 - expected) / Double(max(outcome.hits, 1))).squareRoot()
            #expect(drawn <= allowance * maxWrongRate + noise, "seed \(seed): \(outcome.wrongHits) wrong of \(outcome.hits) hits")
            #expect(outcome.hits >= outcome.lookups / 50, "seed \(seed): it still serves (\(outcome.hits) hits)")
        }
    }

    @Test func boundingTheRecentMeanServesMoreThanBoundingEachHitAndStaysUnderTheBound() async {
        for seed: UInt64 in 1...3 {
            let mean = await Self.typical.run(CacheVerifier.Configuration(maxWrongRate: 0.05), seed: seed)
            let eachHit = await Self.typical.run(CacheVerifier.Configuration(maxWrongRate: 0.05, maxHitBoundRatio: 1), seed: seed)
            #expect(mean.hits > eachHit.hits * 11 / 10, "seed \(seed): \(mean.hits) hits against \(eachHit.hits)")
            #expect(mean.expectedWrongHits <= 0.05 * Double(mean.hits), "seed \(seed): \(mean.expectedWrongHits) wrong expected of \(mean.hits)")
        }
    }

    @Test func aRiskierHitSpendsOnlyTheRoomThatRecentSurerHitsLeft() {
        let verifier = CacheVerifier(CacheVerifier.Configuration(maxWrongRate: 0.05))
        var scope = verifier.newScope()
        #expect(verifier.servable(0.05, scope: scope), "within δ on its own")
        #expect(!verifier.servable(0.06, scope: scope), "no room before any hit")
        func serve(_ upperBound: Double, times: Int) {
            for _ in 0..<times { scope.recent = (scope.recent ?? RecentHits()).adding(upperBound, window: verifier.configuration.window) }
        }
        /// How many hits at `upperBound` in a row the room allows, spending it.
        func burst(_ upperBound: Double) -> Int {
            var count = 0
            while verifier.servable(upperBound, scope: scope) {
                serve(upperBound, times: 1)
                count += 1
            }
            return count
        }
        serve(0.01, times: 10)
        #expect(!verifier.servable(0.11, scope: scope), "never above twice δ")
        // Ten hits at 0.01 left about 10 × 0.04 of room, which hits at 0.09 spend 0.04 at a time.
        #expect((8...10).contains(burst(0.09)))
        #expect(scope.recent!.boundSum <= 0.05 * scope.recent!.hits)
        // Room earned long ago is forgotten: after 5,000 sure hits, hits at 0.09 are served until the
        // older hits' weight has halved (about 69 of them at a window of 100), not for 5,000 in a row.
        serve(0.01, times: 5_000)
        #expect((65...72).contains(burst(0.09)))
    }

    @Test func learnsThatAScopeIsWorseThanItsPrior() async {
        // A third of all candidates are wrong whatever their similarity: one threshold for every
        // scope would serve them; this scope must learn to serve (almost) nothing.
        let hostile = Traffic { _, _, _ in 0.3 }
        for seed: UInt64 in 1...3 {
            let outcome = await hostile.run(CacheVerifier.Configuration(maxWrongRate: 0.05), seed: seed)
            #expect(outcome.wrongHits <= max(2, outcome.hits / 20), "seed \(seed): \(outcome.wrongHits) wrong of \(outcome.hits) hits")
        }
    }

    @Test func learnsThatAScopeIsBetterThanItsPrior() async {
        // Nothing above 0.8 is ever wrong: the scope earns more hits than the prior alone allows.
        let benign = Traffic { similarity, _, _ in similarity >= 0.8 ? 0 : 0.5 }
        let configuration = CacheVerifier.Configuration(maxWrongRate: 0.02)
        let outcome = await benign.run(configuration, seed: 1)
        let early = await Traffic(lookups: 200, wrongRate: benign.wrongRate).run(configuration, seed: 1)
        #expect(outcome.wrongHits == 0)
        #expect(Double(outcome.hits) / Double(outcome.lookups) > 2 * Double(early.hits) / Double(early.lookups))
        #expect(outcome.hits > outcome.lookups / 3)
    }

    @Test func auditsStayWithinTheirShare() async {
        for share in [0.01, 0.05, 0.5] {
            let outcome = await Self.typical.run(CacheVerifier.Configuration(maxWrongRate: 0.05, auditShare: share), seed: 7)
            #expect(outcome.mostAuditsOverBudget <= 1, "at most one audit ahead of the share at any time")
            #expect(outcome.audits > 0)
        }
        let none = await Self.typical.run(CacheVerifier.Configuration(maxWrongRate: 0.05, auditShare: 0), seed: 7)
        #expect(none.audits == 0)
    }

    @Test func explorationsStayWithinTheirBudgetAndStillKeepHitsUnderTheBound() async {
        let unbounded = await Self.typical.run(CacheVerifier.Configuration(maxWrongRate: 0.05), seed: 11)
        for share in [0.005, 0.02] {
            let outcome = await Self.typical.run(CacheVerifier.Configuration(maxWrongRate: 0.05, explorationShare: share), seed: 11)
            #expect(outcome.mostExploredOverBudget <= 1, "at most one exploration ahead of the budget at any time")
            #expect(outcome.explorations > 0 && outcome.explorations < unbounded.explorations)
            #expect(Double(outcome.wrongHits) <= 0.05 * Double(outcome.hits))
        }
    }

    @Test func outcomesMoveTheEstimate() {
        let verifier = CacheVerifier(CacheVerifier.Configuration(maxWrongRate: 0.02))
        let candidate = Candidate(similarity: 0.97, runnerUpSimilarity: nil, mismatch: Mismatch(negation: true))
        var wrongScope = verifier.newScope()
        var rightScope = verifier.newScope()
        let before = verifier.estimate(verifier.configuration.signals.features(of: candidate), scope: wrongScope, entry: verifier.newEntry())
        var wrongEntry = verifier.newEntry()
        var rightEntry = verifier.newEntry()
        let features = verifier.configuration.signals.features(of: candidate)
        for _ in 0..<30 {
            wrongEntry = wrongScope.model.observe(features, wrong: true, entry: wrongEntry)
            rightEntry = rightScope.model.observe(features, wrong: false, entry: rightEntry)
        }
        let afterWrong = verifier.estimate(features, scope: wrongScope, entry: wrongEntry)
        let afterRight = verifier.estimate(features, scope: rightScope, entry: rightEntry)
        #expect(afterWrong.probability > before.probability)
        #expect(afterRight.probability < before.probability)
        #expect(afterRight.upperBound - afterRight.lowerBound < before.upperBound - before.lowerBound, "evidence narrows the bounds")
        #expect(wrongEntry.explorations == 30 && wrongEntry.wrong == 30 && rightEntry.wrong == 0)
    }

    @Test func lessSimilarIsMoreOftenWrong() {
        let verifier = CacheVerifier(CacheVerifier.Configuration(maxWrongRate: 0.02))
        let scope = verifier.newScope()
        let estimates = [0.99, 0.95, 0.9, 0.8].map { similarity in
            verifier.estimate(
                verifier.configuration.signals.features(of: Candidate(similarity: Float(similarity), runnerUpSimilarity: nil, mismatch: Mismatch())),
                scope: scope, entry: verifier.newEntry()).probability
        }
        #expect(estimates == estimates.sorted())
        let clean = Candidate(similarity: 0.97, runnerUpSimilarity: nil, mismatch: Mismatch())
        let negated = Candidate(similarity: 0.97, runnerUpSimilarity: nil, mismatch: Mismatch(negation: true))
        let crowded = Candidate(similarity: 0.97, runnerUpSimilarity: 0.969, mismatch: Mismatch())
        let p = { (candidate: Candidate) in
            verifier.estimate(verifier.configuration.signals.features(of: candidate), scope: scope, entry: verifier.newEntry()).probability
        }
        #expect(p(negated) > p(clean))
        #expect(p(crowded) > p(clean))
    }

    @Test func beliefsSurviveARoundTripThroughTheirStoredForm() throws {
        let verifier = CacheVerifier(CacheVerifier.Configuration(maxWrongRate: 0.05))
        var scope = verifier.newScope()
        var entry = verifier.newEntry()
        var generator = SplitMix64(seed: 3)
        for _ in 0..<200 {
            let candidate = Candidate(similarity: Float(0.85 + 0.15 * generator.nextUnit()), runnerUpSimilarity: nil, mismatch: Mismatch())
            let verdict = verifier.decide(candidate, scope: &scope, entry: entry, draw: generator.nextUnit())
            if verdict.teaches { entry = verifier.learn(verdict, wrong: generator.nextUnit() < 0.05, scope: &scope, entry: entry) }
        }
        let restoredScope = try JSONDecoder().decode(ScopeBelief.self, from: JSONEncoder().encode(scope))
        let restoredEntry = try JSONDecoder().decode(EntryBelief.self, from: JSONEncoder().encode(entry))
        #expect(restoredScope == scope)
        #expect(restoredEntry == entry)
        var original = scope
        var restored = restoredScope
        for similarity in stride(from: Float(0.8), through: 1, by: 0.02) {
            let candidate = Candidate(similarity: similarity, runnerUpSimilarity: nil, mismatch: Mismatch())
            #expect(
                verifier.decide(candidate, scope: &original, entry: entry, draw: 0.5)
                    == verifier.decide(candidate, scope: &restored, entry: restoredEntry, draw: 0.5))
        }
    }

    @Test func theRunnerUpIsTheNearestWithAnotherAnswer() {
        #expect(CacheVerifier.runnerUp([(0.95, "card_arrival"), (0.94, "Card arrival."), (0.9, "exchange_rate")]) == 0.9)
        #expect(CacheVerifier.runnerUp([(0.95, "card_arrival"), (0.94, "card_arrival")]) == nil)
        #expect(CacheVerifier.runnerUp([]) == nil)
    }
}
