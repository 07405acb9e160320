import Foundation
import SeededRandom
import Testing

@testable import Student

/// The sequential test on simulated audit streams: each audit agrees with the teacher with a fixed probability,
/// drawn from a seeded generator.
@Suite struct SequentialTestTests {
    /// The audit at which `test` suspends, among the first `limit` of a stream agreeing with probability `agreement`.
    static func suspension(
        _ test: SequentialTest, agreement: Double, limit: Int, generator: inout SplitMix64
    ) -> Int? {
        var test = test
        for audit in 1...limit where test.record(generator.nextUnit() < agreement) { return audit }
        return nil
    }

    @Test func theStatedBoundsFollowFromTheConfiguration() {
        let configuration = SequentialTest.Configuration.audits
        #expect(abs(configuration.threshold - log(10_000)) < 1e-12)
        #expect(abs(configuration.breakEven - 0.9276) < 1e-4)
        #expect(configuration.expectedDelay(share: 0.95) == nil)
        #expect(configuration.expectedDelay(share: 0.93) == nil)
        #expect(Int(configuration.expectedDelay(share: 0.85)!.rounded(.up)) == 171)
        #expect(Int(configuration.expectedDelay(share: 0.70)!.rounded(.up)) == 59)
        #expect(SequentialTest.Configuration(target: 0.95, margin: 0.96, falseAlarmEvery: 100).invalidReason != nil)
        #expect(SequentialTest.Configuration(target: 1, margin: 0.05, falseAlarmEvery: 100).invalidReason != nil)
        #expect(SequentialTest.Configuration(target: 0.95, margin: 0.05, falseAlarmEvery: 1).invalidReason != nil)
    }

    /// A student at the target is suspended falsely no more often than stated: on average after at least
    /// `auditsPerFalseAlarm` audits, and within n audits with probability at most n / `auditsPerFalseAlarm`.
    /// A small `auditsPerFalseAlarm` makes false alarms frequent enough to count.
    @Test func falseAlarmsAtTheTargetAreAsRareAsStated() {
        let configuration = SequentialTest.Configuration(target: 0.95, margin: 0.05, falseAlarmEvery: 200)
        var generator = SplitMix64(seed: 11)
        let streams = 2000, length = 100
        var runLengths: [Int] = []
        var alarmsWithin = 0
        for _ in 0..<streams {
            // Censored at 20,000 audits: long enough for the mean to be measured (≈ 1% censored).
            let run = Self.suspension(SequentialTest(configuration), agreement: 0.95, limit: 20_000, generator: &generator)
            runLengths.append(run ?? 20_000)
            if let run, run <= length { alarmsWithin += 1 }
        }
        let meanRunLength = Double(runLengths.reduce(0, +)) / Double(streams)
        let shareWithin = Double(alarmsWithin) / Double(streams)
        print(String(format: "at 95%%: mean audits to a false alarm %.0f (bound ≥ 200); within %d audits %.3f (bound ≤ %.3f)",
            meanRunLength, length, shareWithin, Double(length) / 200))
        #expect(meanRunLength >= 200)
        #expect(shareWithin <= Double(length) / 200)
        // Above the target, false alarms are rarer still.
        var above = 0
        for _ in 0..<streams {
            if Self.suspension(SequentialTest(configuration), agreement: 0.98, limit: length, generator: &generator) != nil { above += 1 }
        }
        print("at 98%: \(above) of \(streams) streams suspended within \(length) audits")
        #expect(above <= alarmsWithin)
    }

    /// The defaults over a student's long life: no false suspension of 500 students at the target in 1,000 audits
    /// each (the bound allows 10% of them).
    @Test func theDefaultsRarelySuspendAStudentAtTheTarget() {
        var generator = SplitMix64(seed: 12)
        var suspended = 0
        for _ in 0..<500 {
            if Self.suspension(SequentialTest(.audits), agreement: 0.95, limit: 1000, generator: &generator) != nil { suspended += 1 }
        }
        print("defaults at 95%: \(suspended) of 500 suspended within 1,000 audits (bound ≤ 50)")
        #expect(suspended <= 50)
    }

    /// Once agreement drops, suspension comes within the stated expected number of audits, even after a long good
    /// run: a test without the floor at 0 would first spend the evidence of 2,000 good audits.
    @Test func aDropBelowTheTargetIsDetectedWithinTheStatedDelay() {
        let configuration = SequentialTest.Configuration.audits
        var generator = SplitMix64(seed: 13)
        for agreement in [0.85, 0.70] {
            let bound = configuration.expectedDelay(share: agreement)!
            var delays: [Int] = []
            var falseAlarms = 0
            for _ in 0..<500 {
                var test = SequentialTest(configuration)
                for _ in 0..<2000 where test.record(generator.nextUnit() < 0.97) { falseAlarms += 1 }
                guard !test.alarmed else { continue }
                var delay = 0
                while !test.alarmed {
                    delay += 1
                    test.record(generator.nextUnit() < agreement)
                }
                delays.append(delay)
            }
            let mean = Double(delays.reduce(0, +)) / Double(delays.count)
            let sorted = delays.sorted()
            print(String(format: "after 2,000 audits at 97%%, a drop to %.0f%%: mean delay %.1f audits (bound %.1f), 95th percentile %d",
                100 * agreement, mean, bound, sorted[sorted.count * 95 / 100]))
            #expect(falseAlarms == 0)
            #expect(mean <= bound)
            // And well inside it: the bound is an upper one, not a guess.
            #expect(mean >= bound / 3)
        }
    }

    @Test func aSuspensionIsFinalAndTheStateIsVisible() {
        var test = SequentialTest(.audits)
        test.record(true)
        #expect(test.statistic == 0 && test.observations == 1 && test.failures == 0 && test.progress == 0)
        test.record(false)
        #expect(abs(test.statistic - log(2)) < 1e-12 && test.failures == 1)
        #expect(abs(test.progress - log(2) / log(10_000)) < 1e-12)
        // A disagreement at a raised audit share counts for its weight.
        test.record(false, weight: 0.5)
        #expect(abs(test.statistic - 1.5 * log(2)) < 1e-12)
        // log 10,000 / log 2 ≈ 13.3 disagreements in a row.
        var count = 0
        while !test.record(false) { count += 1 }
        #expect(count == 11 && test.alarmed && test.progress == 1)
        let audits = test.observations
        #expect(test.record(true) && test.observations == audits)
    }

    /// A store shared by several nodes keeps the test as its numbers, and each audit goes on from them.
    @Test func aTestRestoredFromItsNumbersGoesOnAsTheOriginal() {
        var generator = SplitMix64(seed: 11)
        var original = SequentialTest(.audits)
        var restored = SequentialTest(.audits)
        while !original.alarmed {
            let agrees = Double.random(in: 0..<1, using: &generator) < 0.8
            original.record(agrees)
            restored = SequentialTest(
                .audits, statistic: restored.statistic, observations: restored.observations, failures: restored.failures)
            restored.record(agrees)
            #expect(restored == original)
        }
        #expect(SequentialTest(.audits, statistic: original.statistic, observations: 0, failures: 0).alarmed)
    }
}
