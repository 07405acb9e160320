import Foundation
import SeededRandom
import Testing

@testable import Student

@Suite struct CalibrationTests {
    @Test func temperatureScalingRecoversTheTemperatureOfTheLabels() {
        // Labels drawn from softmax(z / 2): the likelihood is highest at T = 2.
        var generator = SplitMix64(seed: 7)
        var logits: [[Float]] = [], labels: [Int] = []
        for _ in 0..<4000 {
            let z = (0..<6).map { _ in Float(3 * generator.nextGaussian()) }
            let weights = z.map { exp(Double($0) / 2) }
            var draw = generator.nextUnit() * weights.reduce(0, +)
            var label = 0
            while draw >= weights[label] && label < 5 {
                draw -= weights[label]
                label += 1
            }
            logits.append(z)
            labels.append(label)
        }
        #expect(abs(Calibration.fitTemperature(logits: logits, labels: labels) - 2) < 0.15)
    }

    @Test func theTemperatureStaysWithinItsBounds() {
        // Always right: sharper is always better, down to the bound (where the slope rounds to 0 in double);
        // always wrong: flatter, up to it.
        let logits: [[Float]] = [[2, 0], [0, 2]]
        #expect(Calibration.fitTemperature(logits: logits, labels: [0, 1]) < 0.06)
        #expect(abs(Calibration.fitTemperature(logits: logits, labels: [1, 0]) - 20) < 0.1)
    }

    @Test func expectedCalibrationErrorWeighsEachBinsGap() {
        let error = Calibration.expectedCalibrationError(
            confidences: [0.95, 0.95, 0.55, 0.55, 1], correct: [true, false, true, true, true])
        // Bin 14: 0.95, 0.95, 1 with agreement 2/3; bin 8: 0.55, 0.55 with agreement 1.
        let expected = 3.0 / 5 * abs(2.0 / 3 - (0.95 + 0.95 + 1) / 3) + 2.0 / 5 * 0.45
        #expect(abs(error - expected) < 1e-6)
        #expect(Calibration.expectedCalibrationError(confidences: [], correct: []) == 0)
    }

    let confidences: [Float] = [0.5, 0.9, 0.8, 0.7, 0.8, 0.6]
    let correct = [false, true, true, true, false, false]

    @Test func tauIsTheSmallestThresholdThatMeetsTheTarget() {
        // From the top: 0.9 → 1/1, 0.8 → 2/3 (equal confidences are accepted together), 0.7 → 3/4, 0.6 → 3/5.
        func threshold(_ target: Double, minimum: Int = 1, z: Double = 0) -> Float? {
            Calibration.acceptanceThreshold(
                confidences: confidences, correct: correct, targetAgreement: target, minimumAccepted: minimum, z: z)
        }
        #expect(threshold(0.75) == 0.7)
        #expect(threshold(0.6) == 0.6)
        #expect(threshold(0.5) == 0.5)
        #expect(threshold(1) == 0.9)
        #expect(threshold(0.75, minimum: 2) == 0.7)
        #expect(threshold(0.75, minimum: 5) == nil)
        #expect(threshold(0.75, z: 1) == nil)
        #expect(threshold(0.4, z: 1) == 0.7)
        #expect(Calibration.acceptanceThreshold(confidences: [], correct: [], targetAgreement: 0.9, minimumAccepted: 1, z: 0) == nil)
    }

    @Test func weightsMoveTau() {
        // For 85%, only 0.9 qualifies unweighted (0.8: 2 of 3, 0.7: 3 of 4); with the wrong 0.8 standing for a
        // third of a request, 0.7 accepts 3 of 3⅓ (90%).
        let weights = [1, 1, 1, 1, 1.0 / 3, 1]
        #expect(
            Calibration.acceptanceThreshold(
                confidences: confidences, correct: correct, targetAgreement: 0.85, minimumAccepted: 1, z: 0) == 0.9)
        #expect(
            Calibration.acceptanceThreshold(
                confidences: confidences, correct: correct, weights: weights, targetAgreement: 0.85, minimumAccepted: 1,
                z: 0) == 0.7)
        // The same weights at one each change nothing.
        #expect(
            Calibration.acceptanceThreshold(
                confidences: confidences, correct: correct, weights: [Double](repeating: 1, count: 6),
                targetAgreement: 0.75, minimumAccepted: 2, z: 0) == 0.7)
    }

    @Test func aWeightedShareCountsWhatItsWeightsAreWorth() {
        var plain = WeightedShare()
        for index in 0..<100 { plain.add(index < 95) }
        #expect(plain.share == 0.95 && plain.effectiveCount == 100)
        #expect(plain.lowerBound(z: 1.96) == Calibration.wilsonLowerBound(successes: 95, trials: 100, z: 1.96))
        // Half the weight on one observation: the effective count falls to under 4, and the bound with it.
        var lopsided = WeightedShare()
        for index in 0..<100 { lopsided.add(index < 95, weight: index == 0 ? 99 : 1) }
        #expect(lopsided.effectiveCount < 4)
        #expect(lopsided.lowerBound(z: 1.96) < plain.lowerBound(z: 1.96))
        #expect(WeightedShare().share == 0 && WeightedShare().effectiveCount == 0)
    }

    @Test func aTemperatureWeightCountsAsThatManyCopies() {
        let logits: [[Float]] = [[2, 0], [2, 0], [0, 1]], labels = [0, 1, 1]
        let weighted = Calibration.fitTemperature(logits: logits, labels: labels, weights: [3, 1, 1])
        let copied = Calibration.fitTemperature(logits: [[2, 0], [2, 0]] + logits, labels: [0, 0] + labels)
        #expect(abs(weighted - copied) < 1e-4)
        #expect(abs(weighted - Calibration.fitTemperature(logits: logits, labels: labels)) > 0.05)
    }

    @Test func wilsonLowerBound() {
        #expect(abs(Calibration.wilsonLowerBound(successes: 95, trials: 100, z: 1.96) - 0.8883) < 1e-4)
        #expect(Calibration.wilsonLowerBound(successes: 3, trials: 4, z: 0) == 0.75)
        #expect(Calibration.wilsonLowerBound(successes: 0, trials: 0, z: 1) == 0)
    }

    @Test func theConfidenceIsTheBestClassNeverTheRest() {
        let (classIndex, probability) = Calibration.confidence(logits: [1, 2, 3], temperature: 1, classCount: 2)
        #expect(classIndex == 1)
        #expect(abs(Double(probability) - exp(2) / (exp(1) + exp(2) + exp(3))) < 1e-6)
        let (_, sharper) = Calibration.confidence(logits: [1, 2, 3], temperature: 0.5, classCount: 2)
        #expect(abs(Double(sharper) - exp(4) / (exp(2) + exp(4) + exp(6))) < 1e-6)
    }
}
