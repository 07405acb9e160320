import SeededRandom
import Testing

@testable import Student

@Suite struct TrafficShiftTests {
    static let classes = AnswerClasses(answers: ["card_arrival", "card_arrival", "exchange_rate", "exchange_rate"], minSupport: 2)

    @Test func recurringAnswersThatAreNoClassAreNewClasses() {
        let recent = [
            "exchange_rate", "Lost or stolen phone.", "top_up_failed", "lost or stolen phone", "Card_Arrival",
            "top_up_failed", "a free-text answer", "lost or stolen phone", "top_up_failed", "card_arrival", "card_arrival",
        ]
        let new = Self.classes.newClasses(in: recent, minSupport: 3)
        // Canonically the same answer counts as one; classes the student has are not new, however often given;
        // answers given fewer than minSupport times are not (yet) classes.
        #expect(new == [NewAnswerClass(answer: "lost or stolen phone", count: 3), NewAnswerClass(answer: "top_up_failed", count: 3)])
        #expect(Self.classes.newClasses(in: recent, minSupport: 4).isEmpty)
        #expect(Self.classes.newClasses(in: [], minSupport: 1).isEmpty)
    }

    /// A confident prediction beyond the strict threshold (`novel`: beyond the other too) with probability `beyond`.
    static func prediction(_ generator: inout SplitMix64, beyond: Double) -> StudentPrediction {
        let outside = generator.nextUnit() < beyond, novel = outside && generator.nextUnit() < 0.1
        return StudentPrediction(
            classIndex: 0, answer: "card_arrival", confidence: 0.9, isConfident: true, novelty: outside ? 0.5 : 0.1,
            novel: novel, borderline: outside && !novel)
    }

    /// In-distribution traffic, beyond the strict threshold for 15% of the confident requests as it intends: no
    /// shift in 10,000 requests. New intents, beyond it for 90%: the novelty test alarms within the stated delay,
    /// and the scope is due once enough requests were turned away to learn from. Requests the student is unsure of
    /// do not count.
    @Test func novelTrafficMakesTheScopeDueSoonerAndInDistributionTrafficDoesNot() {
        let rule = ShiftRule()
        var generator = SplitMix64(seed: 21)
        let audits = SequentialTest(.audits)
        var test = rule.noveltyTest()
        for _ in 0..<10_000 { rule.observe(Self.prediction(&generator, beyond: 0.15), in: &test) }
        #expect(!test.alarmed && test.observations == 10_000)
        #expect(rule.dueSooner(novelty: test, novelAbstentions: 0, newClasses: []) == nil)
        #expect(!rule.suspected(novelty: test, audits: audits, newClasses: []) && !rule.evident(novelty: test))
        var unsure = Self.prediction(&generator, beyond: 1)
        unsure.isConfident = false
        rule.observe(unsure, in: &test)
        #expect(test.observations == 10_000)

        let bound = rule.novelty.expectedDelay(share: 0.1)!
        var delays: [Int] = []
        for _ in 0..<200 {
            var shifted = rule.noveltyTest(), turnedAway = 0
            while rule.dueSooner(novelty: shifted, novelAbstentions: turnedAway, newClasses: []) == nil {
                let prediction = Self.prediction(&generator, beyond: 0.9)
                // Novel requests are turned away; once the test has alarmed, every confident request.
                if !prediction.serves() || rule.evident(novelty: shifted) { turnedAway += 1 }
                rule.observe(prediction, in: &shifted)
            }
            #expect(rule.evident(novelty: shifted) && rule.suspected(novelty: shifted, audits: audits, newClasses: []))
            #expect(turnedAway == rule.novelAbstentions)
            // A test counts observations until it alarms.
            delays.append(shifted.observations)
        }
        let mean = Double(delays.reduce(0, +)) / Double(delays.count)
        print(String(format: "90%% beyond the strict threshold: shift detected after %.1f confident requests on average (bound %.1f)", mean, bound))
        #expect(mean <= bound)
    }

    @Test func newClassesMakeTheScopeDueOnceTheyRecurEnough() {
        let rule = ShiftRule()
        let test = rule.noveltyTest(), audits = SequentialTest(.audits)
        let few = [NewAnswerClass(answer: "top_up_failed", count: 12), NewAnswerClass(answer: "lost or stolen phone", count: 17)]
        #expect(rule.dueSooner(novelty: test, novelAbstentions: 0, newClasses: few) == nil)
        #expect(rule.suspected(novelty: test, audits: audits, newClasses: few))
        #expect(!rule.evident(novelty: test), "a new class is no evidence by itself: noisy teachers give some")
        let enough = few + [NewAnswerClass(answer: "card_swallowed", count: 1)]
        #expect(rule.dueSooner(novelty: test, novelAbstentions: 0, newClasses: enough) == .newClasses(enough))
        #expect("\(ShiftReason.newClasses(enough))" == "the teacher gave 3 new answers 30 times")
    }

    @Test func failingAuditsRaiseSuspicionHalfwayToSuspension() {
        let rule = ShiftRule()
        var novelty = rule.noveltyTest()
        for _ in 0..<rule.probation { novelty.record(true) }
        var audits = SequentialTest(.audits)
        // log 2 per disagreement; halfway to log 10,000 is 6.6 of them.
        for _ in 0..<6 { audits.record(false) }
        #expect(!rule.suspected(novelty: novelty, audits: audits, newClasses: []))
        audits.record(false)
        #expect(rule.suspected(novelty: novelty, audits: audits, newClasses: []))
        #expect(!rule.evident(novelty: novelty), "the audits' own test suspends the student")
    }

    @Test func aVersionIsOnProbationForItsFirstConfidentRequests() {
        let rule = ShiftRule()
        var novelty = rule.noveltyTest()
        let audits = SequentialTest(.audits)
        for _ in 0..<rule.probation {
            #expect(rule.suspected(novelty: novelty, audits: audits, newClasses: []) && !rule.evident(novelty: novelty))
            novelty.record(true)
        }
        #expect(!rule.suspected(novelty: novelty, audits: audits, newClasses: []))
    }

    @Test func theAuditShareIsRaisedWhereTheRiskIs() {
        var policy = AuditPolicy(baseShare: 0.02)
        policy.borderlineShare = 0.2
        #expect(policy.invalidReason == nil)
        #expect(policy.share(answered: 10_000, borderline: false, shiftSuspected: false) == 0.02)
        #expect(policy.share(answered: 0, borderline: false, shiftSuspected: false) == policy.firstShare)
        #expect(policy.share(answered: policy.firstAnswers - 1, borderline: false, shiftSuspected: false) == policy.firstShare)
        #expect(policy.share(answered: policy.firstAnswers, borderline: false, shiftSuspected: false) == 0.02)
        #expect(policy.share(answered: 10_000, borderline: false, shiftSuspected: true) == policy.shiftShare)
        #expect(policy.share(answered: 10_000, borderline: true, shiftSuspected: false) == policy.borderlineShare)
        // The highest raise in force applies.
        var steep = policy
        steep.firstShare = 0.5
        #expect(steep.share(answered: 0, borderline: true, shiftSuspected: true) == 0.5)
        // A raise of every answer keeps audits a fair sample; a borderline raise weighs its audits down.
        #expect(policy.auditWeight(answered: 0, borderline: false, shiftSuspected: true) == 1)
        #expect(abs(policy.auditWeight(answered: 10_000, borderline: true, shiftSuspected: false) - 0.02 / policy.borderlineShare) < 1e-12)
        #expect(abs(policy.auditWeight(answered: 0, borderline: true, shiftSuspected: false) - policy.firstShare / policy.borderlineShare) < 1e-12)
        // With no base share, borderline audits are all there is: they weigh one.
        #expect(AuditPolicy(baseShare: 0).auditWeight(answered: 10_000, borderline: true, shiftSuspected: false) == 1)
        #expect(AuditPolicy(baseShare: 1.5).invalidReason != nil)
    }
}
