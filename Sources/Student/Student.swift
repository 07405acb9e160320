/// A trained student: classes, network, calibration temperature and τ, what it learned from (its novelty
/// exemplars and thresholds), and how it did on its holdout.
///
/// `StudentModel` — int8 weights — is the one evaluated, stored and served; `Student<FloatNetwork>` exists to
/// measure what quantization costs.
public struct Student<Network: StudentNetwork>: Sendable {
    public let classes: AnswerClasses
    public let network: Network
    /// Probabilities are softmax(logits / temperature), fitted on the holdout.
    public let temperature: Float
    /// τ: the least calibrated confidence the student answers with; nil when no threshold met the target
    /// agreement on the holdout, and then it answers nothing.
    public let threshold: Float?
    /// How far a request is from what it learned, and how far is too far; nil for a student stored before novelty
    /// was measured, which serves on its confidence alone.
    public let novelty: Novelty?
    public let report: TrainingReport

    public init(
        classes: AnswerClasses, network: Network, temperature: Float, threshold: Float?, novelty: Novelty? = nil,
        report: TrainingReport
    ) {
        precondition(network.outputCount == classes.outputCount, "the network's outputs are not the classes and the rest")
        precondition(temperature > 0 && temperature.isFinite, "the temperature must be positive")
        precondition(
            novelty.map { $0.exemplars.classCount == classes.count && $0.exemplars.dimension == network.inputCount } ?? true,
            "the novelty exemplars are not of the classes and the embedding")
        (self.classes, self.network, self.temperature, self.threshold, self.novelty, self.report) =
            (classes, network, temperature, threshold, novelty, report)
    }

    /// The student's answer to a request's embedding, with its calibrated confidence (NaN, never confident, for
    /// an embedding that is not finite) and its novelty.
    public func predict(_ embedding: [Float]) -> StudentPrediction {
        let (classIndex, confidence) = Calibration.confidence(
            logits: network.logits(embedding), temperature: temperature, classCount: classes.count)
        var score: Float?, novel = false, borderline = false
        if let novelty {
            let distance = novelty.score(embedding, classIndex: classIndex)
            (score, novel) = (distance, !(distance <= novelty.threshold))
            borderline = !novel && distance > novelty.strictThreshold
        }
        return StudentPrediction(
            classIndex: classIndex, answer: classes.answers[classIndex], confidence: confidence,
            isConfident: threshold.map { confidence >= $0 } ?? false, novelty: score, novel: novel, borderline: borderline)
    }

    /// How the student does on teacher exchanges at its τ and novelty threshold (no shift suspected): an answer
    /// agrees when it is the teacher's answer canonicalized, so students with different classes can be compared on
    /// the same exchanges.
    public func evaluate(_ exchanges: some Collection<TeacherExchange>) -> HoldoutMetrics {
        HoldoutMetrics(outcomes(exchanges))
    }

    /// `evaluate`, exchange by exchange.
    public func outcomes(_ exchanges: some Collection<TeacherExchange>) -> [HeldOutOutcome] {
        exchanges.map { exchange in
            let prediction = predict(exchange.embedding)
            return HeldOutOutcome(
                accepted: prediction.serves(), agrees: classes.index(of: exchange.answer) == prediction.classIndex,
                weight: exchange.weight)
        }
    }
}

/// The student as served: int8 weights.
public typealias StudentModel = Student<QuantizedNetwork>

public struct StudentPrediction: Sendable, Hashable {
    public var classIndex: Int
    /// The class's answer text, as the teacher gave it most often.
    public var answer: String
    /// The calibrated probability of `answer`.
    public var confidence: Float
    /// Whether `confidence` reaches τ.
    public var isConfident: Bool
    /// The cosine distance to the nearest exemplar of the class (`Novelty`); nil when the student has no novelty
    /// information (stored before it was measured).
    public var novelty: Float?
    /// Whether `novelty` is above the student's novelty threshold: the request is unlike what it learned, and it
    /// abstains however confident it is.
    public var novel: Bool
    /// Whether `novelty` is above the strict threshold though not novel: served unless a shift is suspected, and
    /// audited more.
    public var borderline: Bool

    /// Whether to serve `answer` (else ask the teacher): confident, not novel, and not borderline while a shift of
    /// the scope's traffic is suspected (`ShiftRule.suspected`).
    public func serves(shiftSuspected: Bool = false) -> Bool {
        isConfident && !novel && !(shiftSuspected && borderline)
    }
}

/// What a student makes of one held-out teacher exchange: whether it would answer (confident, not novel), and
/// whether its answer is the teacher's; and how many requests of the traffic the exchange stands for.
public struct HeldOutOutcome: Sendable, Hashable {
    public var accepted: Bool
    public var agrees: Bool
    public var weight: Double

    public init(accepted: Bool, agrees: Bool, weight: Double = 1) {
        (self.accepted, self.agrees, self.weight) = (accepted, agrees, weight)
    }
}

/// Agreement with the teacher on a set of exchanges, overall and among the answers it would give.
public struct HoldoutMetrics: Sendable, Hashable, Codable {
    public var count = 0
    /// Exchanges whose predicted class is the teacher's answer.
    public var agreeing = 0
    /// Exchanges it would answer: confident at τ and not novel.
    public var accepted = 0
    /// Accepted exchanges that agree.
    public var agreeingAccepted = 0

    public init(count: Int = 0, agreeing: Int = 0, accepted: Int = 0, agreeingAccepted: Int = 0) {
        (self.count, self.agreeing, self.accepted, self.agreeingAccepted) = (count, agreeing, accepted, agreeingAccepted)
    }

    public init(_ outcomes: some Sequence<HeldOutOutcome>) {
        for outcome in outcomes {
            count += 1
            agreeing += outcome.agrees ? 1 : 0
            accepted += outcome.accepted ? 1 : 0
            agreeingAccepted += outcome.accepted && outcome.agrees ? 1 : 0
        }
    }

    public var agreement: Double { count == 0 ? 0 : Double(agreeing) / Double(count) }
    /// The share of exchanges the student would answer.
    public var coverage: Double { count == 0 ? 0 : Double(accepted) / Double(count) }
    /// Agreement among the answers it would give (0 when it gives none).
    public var acceptedAgreement: Double { accepted == 0 ? 0 : Double(agreeingAccepted) / Double(accepted) }
}

/// A student's coverage and accepted agreement on held-out exchanges that each stand for `weight` requests of the
/// traffic: what it would do on the traffic, as far as the holdout can tell.
public struct TrafficEstimate: Sendable, Hashable {
    public private(set) var weight = 0.0
    /// Agreement among the accepted, and their weight and effective count.
    public private(set) var acceptedAgreement = WeightedShare()

    public init(_ outcomes: [HeldOutOutcome]) {
        for outcome in outcomes {
            weight += outcome.weight
            if outcome.accepted { acceptedAgreement.add(outcome.agrees, weight: outcome.weight) }
        }
    }

    /// The share of the traffic it would answer.
    public var coverage: Double { weight > 0 ? acceptedAgreement.weight / weight : 0 }
}

/// How a student was trained and how it did on its holdout, stored with it (and `Codable`, for a JSON column).
public struct TrainingReport: Sendable, Hashable, Codable {
    /// Exchanges trained on (the older ones), and how many of them had a soft target.
    public var trainingCount: Int
    public var softTargetCount: Int
    /// Epochs run, and the one whose weights were kept (least holdout cross-entropy).
    public var epochs: Int
    public var bestEpoch: Int
    /// Expected calibration error (15 bins) on the answers calibrated on (the holdout, and the cross-fitted
    /// training answers), before and after temperature scaling.
    public var calibrationErrorBefore: Double
    public var calibrationErrorAfter: Double
    /// This network on the holdout (the newer exchanges) at its τ.
    public var holdout: HoldoutMetrics

    public init(
        trainingCount: Int, softTargetCount: Int, epochs: Int, bestEpoch: Int, calibrationErrorBefore: Double,
        calibrationErrorAfter: Double, holdout: HoldoutMetrics
    ) {
        (self.trainingCount, self.softTargetCount, self.epochs, self.bestEpoch) =
            (trainingCount, softTargetCount, epochs, bestEpoch)
        (self.calibrationErrorBefore, self.calibrationErrorAfter, self.holdout) =
            (calibrationErrorBefore, calibrationErrorAfter, holdout)
    }
}
