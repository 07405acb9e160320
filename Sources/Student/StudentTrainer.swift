/// A logged teacher exchange, as the student learns from it.
public struct TeacherExchange: Sendable {
    /// The request's embedding (the one the cache computed).
    public var embedding: [Float]
    /// The teacher's answer.
    public var answer: String
    /// The first generated token's `top_logprobs`, when the teacher returned them: text and natural-log
    /// probability of each alternative.
    public var alternatives: [(text: String, logprob: Double)]
    /// How many requests of the traffic it stands for when calibration and τ are judged (`HoldoutWeights`).
    public var weight: Double

    public init(
        embedding: [Float], answer: String, alternatives: [(text: String, logprob: Double)] = [], weight: Double = 1
    ) {
        (self.embedding, self.answer, self.alternatives, self.weight) = (embedding, answer, alternatives, weight)
    }
}

/// Everything that decides a student. The defaults were chosen by measurement on Banking77 (docs/benchmarks.md).
public struct TrainingConfiguration: Sendable, Hashable {
    /// Answers given fewer times than this (in the training share) are no class.
    public var minSupport = 3
    /// Widths of the hidden layers (ReLU); empty, the default, is softmax regression on the embedding, which
    /// matched or beat one hidden layer of 128–512 on Banking77 with both teachers, at 3,000 and 10,000 answers.
    public var hiddenWidths: [Int] = []
    /// α, the weight of the distillation term; 1 − α weighs the cross-entropy with the teacher's answer.
    public var alpha: Float = 0.5
    /// T of the distillation term.
    public var distillationTemperature: Float = 2
    /// Soft targets need at least this share of the listed alternatives' probability on classes
    /// (`AnswerClasses.target`).
    public var minimumMatchedShare = 0.5
    public var learningRate: Float = 1e-2
    /// AdamW's decoupled weight decay, on weights, not biases.
    public var weightDecay: Float = 0
    /// Dropout after each hidden layer.
    public var dropout: Float = 0
    public var batchSize = 64
    public var maxEpochs = 200
    /// Training stops when the holdout's cross-entropy has not improved for this many epochs.
    public var patience = 10
    /// The newest share of the exchanges held out for early stopping, calibration and τ, when the caller does
    /// not split them itself.
    public var holdoutFraction = 0.2
    /// Calibration and τ are judged on the holdout and on every training exchange as scored by one of this many
    /// networks, each trained without the exchange's fold (cross-fitting): a few hundred held-out answers bound
    /// agreement too loosely to set τ where the traffic allows (docs/benchmarks.md, Replay). 0: the holdout only.
    /// Eight, not four: a fold network that learns from 7/8 of the answers scores them more like the served network,
    /// which learns from all. With four, the later candidates of a GPT-4 replay got a τ that left 15–19 points of
    /// coverage at the target unused; with eight, 2–9 (docs/benchmarks.md, Replay). Each fold is one more fit.
    public var calibrationFolds = 8
    /// τ must make accepted holdout answers agree with the teacher at least this often…
    public var targetAgreement = 0.95
    /// …with at least this many accepted…
    public var minimumAccepted = 50
    /// …by the Wilson lower bound with this z (0: by the observed agreement). With 0, agreement at τ on unseen
    /// traffic fell short of the target (94.4% for 95% with the GPT-4 teacher); 1.645 held it.
    public var thresholdConfidenceZ = 1.645
    /// Exemplars kept per class for the novelty score (`Novelty`), evenly spread over its training answers; 0: no
    /// novelty score, the student serves on its confidence alone. On Banking77, 64 separated unseen intents as well
    /// as every training answer did, and 16 or 32 worse (docs/benchmarks.md, Novelty); a model of 77 classes
    /// carries at most 1.9 MB of them.
    public var noveltyExemplars = 64
    /// The novelty threshold keeps this share of the in-distribution answers the student is confident on: it is
    /// their novelty's quantile (the holdout's and the cross-fitted training answers', weighted). τ is fitted as
    /// before, on all of them: refitted on the answers the threshold keeps, it fell from 0.41 to 0.22 on Banking77's
    /// grouped rows and let more unseen intents through than the novelty gate had stopped (docs/benchmarks.md, Novelty).
    public var noveltyCoverage = 0.99
    /// The strict threshold, in force while a shift is suspected, keeps this share of the same. On Banking77's
    /// grouped rows, 85% served unseen-intent traffic at 95.4% agreement where 90% served it at 92.2%.
    public var strictNoveltyCoverage = 0.85
    /// Seeds initialization, shuffling and dropout.
    public var seed: UInt64 = 0

    public init() {}

    func validate() throws(StudentTrainingError) {
        func require(_ condition: Bool, _ reason: String) throws(StudentTrainingError) {
            if !condition { throw .invalidConfiguration(reason) }
        }
        try require(minSupport >= 1, "minSupport must be at least 1")
        try require(hiddenWidths.allSatisfy { $0 >= 1 }, "hidden widths must be positive")
        try require((0...1).contains(alpha), "alpha must be within 0…1")
        try require(distillationTemperature > 0 && distillationTemperature.isFinite, "the temperature must be positive")
        try require((0...1).contains(minimumMatchedShare), "minimumMatchedShare must be within 0…1")
        try require(learningRate > 0 && learningRate.isFinite, "the learning rate must be positive")
        try require(weightDecay >= 0 && weightDecay.isFinite, "the weight decay must not be negative")
        try require(dropout >= 0 && dropout < 1, "dropout must be within 0..<1")
        try require(batchSize >= 1 && maxEpochs >= 1 && patience >= 1, "batch size, epochs and patience must be positive")
        try require(holdoutFraction > 0 && holdoutFraction < 1, "the holdout fraction must be within 0…1, exclusive")
        try require(calibrationFolds == 0 || calibrationFolds >= 2, "cross-fitting needs at least 2 folds, or 0")
        try require((0...1).contains(targetAgreement), "the target agreement must be within 0…1")
        try require(minimumAccepted >= 1, "minimumAccepted must be at least 1")
        try require(thresholdConfidenceZ >= 0 && thresholdConfidenceZ.isFinite, "z must not be negative")
        try require(noveltyExemplars >= 0, "noveltyExemplars must not be negative")
        try require(
            strictNoveltyCoverage > 0 && strictNoveltyCoverage <= noveltyCoverage && noveltyCoverage <= 1,
            "the novelty coverages must be within 0…1, the strict one at most the other")
    }
}

public enum StudentTrainingError: Error, Equatable, CustomStringConvertible {
    case invalidConfiguration(String)
    /// Training needs at least one exchange to train on and one to hold out.
    case notEnoughExchanges(Int)
    /// No answer recurs `minSupport` times in the training share.
    case noClasses(minSupport: Int)
    case invalidEmbedding(index: Int, reason: String)
    /// `shouldStop` returned true.
    case cancelled

    public var description: String {
        switch self {
        case .invalidConfiguration(let reason): "invalid student configuration: \(reason)"
        case .notEnoughExchanges(let count): "\(count) teacher exchanges are too few to train a student"
        case .noClasses(let minSupport): "no teacher answer recurs \(minSupport) times: the student has no classes"
        case .invalidEmbedding(let index, let reason): "exchange \(index): \(reason)"
        case .cancelled: "student training was cancelled"
        }
    }
}

/// A trained student and its float original.
public struct TrainingResult: Sendable {
    /// Quantized, calibrated and thresholded: the candidate to store, gate and serve.
    public var model: StudentModel
    /// The same network before quantization, calibrated and thresholded on its own: what int8 costs.
    public var floatModel: Student<FloatNetwork>
}

public enum StudentTrainer {
    /// Trains a student on teacher exchanges given oldest first: the classes and the network come from the older
    /// `1 − holdoutFraction`, the newest share is the holdout.
    public static func train(
        _ exchanges: [TeacherExchange], configuration: TrainingConfiguration = .init(),
        shouldStop: () -> Bool = { false }
    ) throws(StudentTrainingError) -> TrainingResult {
        try configuration.validate()
        let holdoutCount = Int((Double(exchanges.count) * configuration.holdoutFraction).rounded())
        guard holdoutCount >= 1, holdoutCount < exchanges.count else { throw .notEnoughExchanges(exchanges.count) }
        let split = exchanges.count - holdoutCount
        return try train(
            training: Array(exchanges[..<split]), holdout: Array(exchanges[split...]), configuration: configuration,
            shouldStop: shouldStop)
    }

    /// The cross-fitting fold of training exchange `index` of `count`: contiguous runs, so that the exchanges of one
    /// prompt, given next to each other, share a fold.
    static func crossFittingFold(of index: Int, count: Int, folds: Int) -> Int {
        index * folds / count
    }

    /// Trains a student: the classes and the network come from `training`, and `holdout` serves early stopping,
    /// calibration and τ (`configuration.holdoutFraction` plays no part); with `calibrationFolds`, so do the
    /// training exchanges, each scored by a network that did not train on it. Calibration and τ weigh each
    /// exchange by its `weight`.
    ///
    /// The folds are contiguous runs of `training`: give the exchanges of one prompt next to each other (the
    /// distiller orders them by prompt hash), or a fold's network will have learned the very prompt it scores. Folds
    /// by index modulo k did exactly that with a teacher log full of repeated prompts (`distill-bench soak`'s refreshes):
    /// τ fell to 0.25 and a version accepted every request at 94% agreement.
    ///
    /// Synchronous, on the calling thread only (run it on a thread of its own); `shouldStop` is asked before every
    /// epoch and makes it throw `.cancelled`. Deterministic: the same exchanges, in the same order, and
    /// configuration give the same model, bit for bit.
    public static func train(
        training: [TeacherExchange], holdout: [TeacherExchange], configuration: TrainingConfiguration = .init(),
        shouldStop: () -> Bool = { false }
    ) throws(StudentTrainingError) -> TrainingResult {
        try configuration.validate()
        let exchanges = training + holdout
        guard !training.isEmpty, !holdout.isEmpty else { throw .notEnoughExchanges(exchanges.count) }
        let dimension = exchanges[0].embedding.count
        for (index, exchange) in exchanges.enumerated() {
            guard exchange.embedding.count == dimension, dimension > 0 else {
                throw .invalidEmbedding(index: index, reason: "\(exchange.embedding.count) dimensions, not \(dimension)")
            }
            guard exchange.embedding.allSatisfy(\.isFinite) else {
                throw .invalidEmbedding(index: index, reason: "not finite")
            }
            guard exchange.weight > 0 && exchange.weight.isFinite else {
                throw .invalidEmbedding(index: index, reason: "its weight is not positive")
            }
        }
        let classes = AnswerClasses(answers: training.map(\.answer), minSupport: configuration.minSupport)
        guard classes.count > 0 else { throw .noClasses(minSupport: configuration.minSupport) }

        let targets = training.map {
            classes.target(
                answer: $0.answer, alternatives: $0.alternatives,
                minimumMatchedShare: configuration.minimumMatchedShare)
        }
        // The teacher's answer as a class; the rest for an answer that is none.
        let label = { (exchange: TeacherExchange) in classes.index(of: exchange.answer) ?? classes.restIndex }
        let holdoutLabels = holdout.map(label)
        let holdoutInputs = holdout.flatMap(\.embedding)
        func fit(_ members: [Int]) throws(StudentTrainingError) -> NetworkTrainer.Outcome {
            try NetworkTrainer(dimension: dimension, outputCount: classes.outputCount, configuration: configuration).fit(
                inputs: members.flatMap { training[$0].embedding }, targets: members.map { targets[$0] },
                holdoutInputs: holdoutInputs, holdoutLabels: holdoutLabels, shouldStop: shouldStop)
        }
        let outcome = try fit(Array(training.indices))
        // Cross-fitting: each training exchange is scored by the network of its fold, which never saw it.
        let folds = training.count >= 2 * configuration.calibrationFolds ? configuration.calibrationFolds : 0
        let fold = { (index: Int) in crossFittingFold(of: index, count: training.count, folds: folds) }
        let foldNetworks = try (0..<folds).map { k throws(StudentTrainingError) in
            try fit(training.indices.filter { fold($0) != k }).network
        }
        let trainingLabels = training.map(label)

        // Novelty: the student's exemplars score the holdout; each training answer is scored by the exemplars of the
        // other folds, as its confidence is by the network of the other folds.
        var members = [[Int]](repeating: [], count: classes.count)
        for (index, label) in trainingLabels.enumerated() where label != classes.restIndex { members[label].append(index) }
        func exemplars(leavingOut k: Int?) -> Exemplars {
            Exemplars(
                embeddings: training.map(\.embedding), members: members.map { $0.filter { fold($0) != k } },
                limit: configuration.noveltyExemplars, dimension: dimension)
        }
        let exemplarSets = configuration.noveltyExemplars > 0
            ? [exemplars(leavingOut: nil)] + (0..<folds).map(exemplars) : []
        let calibrationQueries = exemplarSets.isEmpty
            ? [] : (holdout + (folds > 0 ? training : [])).map { Exemplars.Query($0.embedding) }

        /// The network, calibrated and thresholded on the holdout and the cross-fitted training exchanges.
        func calibrated<Network: StudentNetwork>(_ network: Network, folds: [Network]) -> Student<Network> {
            var logits = holdout.map { network.logits($0.embedding) }, labels = holdoutLabels, weights = holdout.map(\.weight)
            for index in training.indices where !folds.isEmpty {
                logits.append(folds[fold(index)].logits(training[index].embedding))
                labels.append(trainingLabels[index])
                weights.append(training[index].weight)
            }
            let temperature = Calibration.fitTemperature(logits: logits, labels: labels, weights: weights)
            func predictions(_ temperature: Float) -> (classes: [Int], confidences: [Float], correct: [Bool]) {
                let predictions = logits.map {
                    Calibration.confidence(logits: $0, temperature: temperature, classCount: classes.count)
                }
                return (
                    predictions.map(\.classIndex), predictions.map(\.probability),
                    zip(predictions, labels).map { $0.classIndex == $1 }
                )
            }
            let before = predictions(1), after = predictions(temperature)
            let answers = Array(labels.indices)
            let threshold = Calibration.acceptanceThreshold(
                confidences: after.confidences, correct: after.correct, weights: weights,
                targetAgreement: configuration.targetAgreement,
                minimumAccepted: configuration.minimumAccepted, z: configuration.thresholdConfidenceZ)
            var novelty: Novelty?, distances = [Float](repeating: 0, count: labels.count)
            if !exemplarSets.isEmpty {
                for index in answers {
                    let set = index < holdout.count ? 0 : 1 + fold(index - holdout.count)
                    distances[index] = exemplarSets[set].distance(calibrationQueries[index], classIndex: after.classes[index])
                }
                // The in-distribution answers it is confident on: the teacher's answer is a class, the confidence
                // reaches τ (all such answers when none does).
                let learned = answers.filter { index in
                    labels[index] != classes.restIndex && threshold.map { after.confidences[index] >= $0 } ?? true
                }
                if !learned.isEmpty {
                    func quantile(_ level: Double) -> Float {
                        Calibration.weightedQuantile(
                            learned.map { distances[$0] }, weights: learned.map { weights[$0] }, level: level)
                    }
                    novelty = Novelty(
                        exemplars: exemplarSets[0], threshold: quantile(configuration.noveltyCoverage),
                        strictThreshold: quantile(configuration.strictNoveltyCoverage))
                }
            }
            // The holdout comes first among the answers calibrated on.
            let metrics = HoldoutMetrics(
                answers.prefix(holdout.count).map { index in
                    HeldOutOutcome(
                        accepted: threshold.map { after.confidences[index] >= $0 } ?? false
                            && novelty.map { distances[index] <= $0.threshold } ?? true,
                        agrees: after.correct[index])
                })
            let report = TrainingReport(
                trainingCount: training.count, softTargetCount: targets.count { !$0.distribution.isEmpty },
                epochs: outcome.epochs, bestEpoch: outcome.bestEpoch,
                calibrationErrorBefore: Calibration.expectedCalibrationError(
                    confidences: before.confidences, correct: before.correct),
                calibrationErrorAfter: Calibration.expectedCalibrationError(
                    confidences: after.confidences, correct: after.correct),
                holdout: metrics)
            return Student(
                classes: classes, network: network, temperature: temperature, threshold: threshold, novelty: novelty,
                report: report)
        }
        return TrainingResult(
            model: calibrated(QuantizedNetwork(outcome.network), folds: foldNetworks.map(QuantizedNetwork.init)),
            floatModel: calibrated(outcome.network, folds: foldNetworks))
    }
}
