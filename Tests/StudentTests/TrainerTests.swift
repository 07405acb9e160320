import Foundation
import SeededRandom
import Testing

@testable import Student

/// Synthetic traffic: four intents whose queries cluster around their own direction, and open-ended prompts
/// around a fifth whose answers never recur.
enum SyntheticTraffic {
    static let dimension = 16

    static func exchanges(count: Int, seed: UInt64, noise: Double = 0.15) -> [TeacherExchange] {
        var generator = SplitMix64(seed: seed)
        let centers = (0..<5).map { _ in normalized((0..<dimension).map { _ in Float(generator.nextGaussian()) }) }
        return (0..<count).map { index in
            let intent = Int(generator.next() % 5)
            let embedding = normalized(centers[intent].map { $0 + Float(noise * generator.nextGaussian()) })
            let answer = intent == 4 ? "free text \(index)" : "intent \(intent)"
            return TeacherExchange(embedding: embedding, answer: answer)
        }
    }

    static func normalized(_ x: [Float]) -> [Float] {
        let norm = x.reduce(0) { $0 + $1 * $1 }.squareRoot()
        return x.map { $0 / norm }
    }

    static var configuration: TrainingConfiguration {
        var configuration = TrainingConfiguration()
        configuration.hiddenWidths = [16]
        configuration.minimumAccepted = 20
        configuration.maxEpochs = 40
        return configuration
    }
}

@Suite struct TrainerTests {
    @Test func learnsTheIntentsAndLeavesOpenEndedPromptsToTheTeacher() throws {
        let exchanges = SyntheticTraffic.exchanges(count: 1000, seed: 1)
        var configuration = SyntheticTraffic.configuration
        // A strict target leaves no room for accepting open-ended prompts.
        configuration.targetAgreement = 0.97
        let result = try StudentTrainer.train(exchanges, configuration: configuration)
        let model = result.model
        #expect(Set(model.classes.answers) == ["intent 0", "intent 1", "intent 2", "intent 3"])
        #expect(model.report.trainingCount == 800 && model.report.softTargetCount == 0)
        #expect(model.report.holdout.count == 200 && model.report.holdout.acceptedAgreement >= 0.97)
        #expect(model.report.epochs >= model.report.bestEpoch && model.report.bestEpoch >= 1)

        // The same stream, 1,000 exchanges further.
        let unseen = SyntheticTraffic.exchanges(count: 2000, seed: 1)[1000...]
        let intents = unseen.filter { !$0.answer.hasPrefix("free text") }
        let openEnded = unseen.filter { $0.answer.hasPrefix("free text") }
        #expect(model.evaluate(intents).agreement > 0.97)
        #expect(model.evaluate(intents).coverage > 0.9)
        // Open-ended prompts fall on the rest: the student declines them.
        #expect(model.evaluate(openEnded).coverage < 0.05)
        #expect(model.evaluate(unseen).acceptedAgreement >= 0.97)
        // A broken embedding is never answered.
        #expect(model.predict([Float](repeating: .nan, count: 16)).confidence.isNaN)
        #expect(!model.predict([Float](repeating: .nan, count: 16)).isConfident)
    }

    @Test func theSameExchangesAndSeedGiveTheSameModelBitForBit() throws {
        let exchanges = SyntheticTraffic.exchanges(count: 400, seed: 2)
        var configuration = SyntheticTraffic.configuration
        configuration.dropout = 0.2
        configuration.maxEpochs = 5
        let first = try StudentTrainer.train(exchanges, configuration: configuration).model.encoded()
        let second = try StudentTrainer.train(exchanges, configuration: configuration).model.encoded()
        #expect(first == second)
        configuration.seed = 1
        #expect(try StudentTrainer.train(exchanges, configuration: configuration).model.encoded() != first)
    }

    @Test func theStopCallbackIsAskedBeforeEveryEpoch() throws {
        let exchanges = SyntheticTraffic.exchanges(count: 200, seed: 3)
        var configuration = SyntheticTraffic.configuration
        configuration.patience = 100
        var asked = 0
        #expect(throws: StudentTrainingError.cancelled) {
            try StudentTrainer.train(exchanges, configuration: configuration) {
                asked += 1
                return asked == 3
            }
        }
        #expect(asked == 3)
        configuration.maxEpochs = 4
        asked = 0
        _ = try StudentTrainer.train(exchanges, configuration: configuration) {
            asked += 1
            return false
        }
        // Before every epoch of the student's network and of each cross-fitting fold's.
        #expect(asked == 4 * (1 + configuration.calibrationFolds))
    }

    @Test func aPromptLoggedOverAndOverStaysInOneFold() {
        // 100 prompts logged four times each, next to each other: every prompt's copies share a fold, so no fold
        // network has learned a prompt it scores. Folds by index modulo 4 put each copy in another.
        let folds = (0..<400).map { StudentTrainer.crossFittingFold(of: $0, count: 400, folds: 4) }
        for prompt in 0..<100 { #expect(Set(folds[4 * prompt..<4 * prompt + 4]).count == 1) }
        #expect((0..<4).map { fold in folds.count { $0 == fold } } == [100, 100, 100, 100])
        // Uneven counts still use every fold, in order.
        let uneven = (0..<10).map { StudentTrainer.crossFittingFold(of: $0, count: 10, folds: 4) }
        #expect(uneven == [0, 0, 0, 1, 1, 2, 2, 2, 3, 3])
    }

    @Test func crossFittingCalibratesOnTheTrainingExchangesToo() throws {
        // 15 held-out exchanges cannot show the 20 accepted answers τ needs; cross-fitted, the 400 training ones
        // can, and τ holds on traffic neither saw.
        let exchanges = SyntheticTraffic.exchanges(count: 415, seed: 5)
        let training = Array(exchanges.prefix(400)), holdout = Array(exchanges.suffix(15))
        var configuration = SyntheticTraffic.configuration
        configuration.calibrationFolds = 0
        #expect(try StudentTrainer.train(training: training, holdout: holdout, configuration: configuration).model.threshold == nil)
        configuration.calibrationFolds = 4
        let model = try StudentTrainer.train(training: training, holdout: holdout, configuration: configuration).model
        #expect(model.threshold != nil)
        #expect(model.report.holdout.count == 15)
        let unseen = SyntheticTraffic.exchanges(count: 2415, seed: 5)[415...]
        #expect(model.evaluate(unseen).acceptedAgreement >= 0.95)
        #expect(model.evaluate(unseen).coverage > 0.5)
    }

    @Test func refusesWhatItCannotTrainOn() {
        let exchanges = SyntheticTraffic.exchanges(count: 50, seed: 4)
        #expect(throws: StudentTrainingError.notEnoughExchanges(1)) { try StudentTrainer.train(Array(exchanges.prefix(1))) }
        #expect(throws: StudentTrainingError.noClasses(minSupport: 100)) {
            var configuration = TrainingConfiguration()
            configuration.minSupport = 100
            return try StudentTrainer.train(exchanges, configuration: configuration)
        }
        var ragged = exchanges
        ragged[7].embedding.removeLast()
        #expect(throws: StudentTrainingError.invalidEmbedding(index: 7, reason: "15 dimensions, not 16")) {
            try StudentTrainer.train(ragged)
        }
        var infinite = exchanges
        infinite[3].embedding[0] = .infinity
        #expect(throws: StudentTrainingError.invalidEmbedding(index: 3, reason: "not finite")) {
            try StudentTrainer.train(infinite)
        }
        var configuration = TrainingConfiguration()
        configuration.dropout = 1
        #expect(throws: StudentTrainingError.invalidConfiguration("dropout must be within 0..<1")) {
            try StudentTrainer.train(exchanges, configuration: configuration)
        }
    }

    /// Back-propagation against central differences of the loss, with soft and hard targets and two hidden layers.
    @Test func gradientsMatchFiniteDifferences() {
        var configuration = TrainingConfiguration()
        configuration.hiddenWidths = [6, 5]
        configuration.alpha = 0.7
        configuration.distillationTemperature = 2
        let trainer = NetworkTrainer(dimension: 4, outputCount: 4, configuration: configuration)
        var generator = SplitMix64(seed: 5)
        let inputs = (0..<12).map { _ in Float(generator.nextGaussian()) }
        let targets = [
            TrainingTarget(label: 1, distribution: [.init(classIndex: 1, probability: 0.7), .init(classIndex: 2, probability: 0.3)]),
            TrainingTarget(label: 3),
            TrainingTarget(label: 0, distribution: [.init(classIndex: 0, probability: 0.5), .init(classIndex: 1, probability: 0.5)]),
        ]
        let tempered = targets.map { trainer.tempered($0.distribution) }
        let examples = ArraySlice([0, 1, 2])
        trainer.computeGradients(examples: examples, inputs: inputs, targets: targets, tempered: tempered)
        let parameters = trainer.layers.flatMap { [$0.weights, $0.biases] }
        let analytic = parameters.map { parameter in (0..<parameter.count).map { Double(parameter.gradient[$0]) } }
        for (number, parameter) in parameters.enumerated() {
            for p in 0..<parameter.count {
                let original = parameter.value[p]
                let step: Float = 1e-3
                parameter.value[p] = original + step
                let up = trainer.computeGradients(examples: examples, inputs: inputs, targets: targets, tempered: tempered)
                parameter.value[p] = original - step
                let down = trainer.computeGradients(examples: examples, inputs: inputs, targets: targets, tempered: tempered)
                parameter.value[p] = original
                let numeric = (up - down) / Double(2 * step)
                #expect(abs(numeric - analytic[number][p]) <= 1e-3 + 0.01 * abs(numeric), "tensor \(number), element \(p)")
            }
        }
    }

    @Test func theTeachersDistributionIsSharpenedOrFlattenedByT() {
        var configuration = TrainingConfiguration()
        configuration.distillationTemperature = 2
        let trainer = NetworkTrainer(dimension: 2, outputCount: 3, configuration: configuration)
        let tempered = trainer.tempered([.init(classIndex: 0, probability: 0.8), .init(classIndex: 2, probability: 0.2)])
        #expect(tempered.map(\.classIndex) == [0, 2])
        #expect(abs(tempered[0].probability - 2 / 3) < 1e-6)  // √0.8 / (√0.8 + √0.2) = 2/3
    }
}
