/// The teacher's answers to a serving student's requests that are none of its classes (the latest `limit`), with the
/// requests' embeddings: the recurring ones are classes the teacher started giving (`newClasses`), and a request
/// nearer to one the teacher answered with a new class than to anything the student learned of the class it predicts
/// is likely of that new class (`nearerToNewClass`).
///
/// On the drift replay (Banking77's intents arriving one by one) the worst windows were new intents that lie as near
/// to learned ones as their own paraphrases ("refund not showing up" served as `request_refund`): neither the
/// confidence nor the novelty score tells them apart, but the teacher's answers to the first of them do. Only new
/// classes count, not every answer the teacher gave otherwise: answers of the student's own classes on its borders
/// turned away in-distribution traffic too (counterexamples, docs/benchmarks.md, Novelty).
public struct UnknownAnswers: Sendable {
    public let limit: Int
    public let minSupport: Int
    /// Oldest first; `direction` is the request's embedding at unit length (nil when it had none).
    private var answers: [(text: String, direction: [Float]?)] = []
    public private(set) var newClasses: [NewAnswerClass] = []
    /// The directions of the requests answered with one of `newClasses`.
    private var newClassDirections: [[Float]] = []

    /// `minSupport`: as the classes' (`AnswerClasses`), so that a new class is one a training would learn.
    public init(limit: Int, minSupport: Int) {
        (self.limit, self.minSupport) = (limit, minSupport)
    }

    public var count: Int { answers.count }

    /// Takes in a teacher answer that is none of `classes`, to a request with this embedding.
    public mutating func add(_ answer: String, embedding: [Float]?, classes: AnswerClasses) {
        answers.append((answer, embedding.flatMap(Self.unit)))
        if answers.count > limit { answers.removeFirst() }
        newClasses = classes.newClasses(in: answers.map(\.text), minSupport: minSupport)
        let keys = Set(newClasses.map { AnswerClasses.canonicalKey($0.answer) })
        newClassDirections = answers.compactMap { keys.contains(AnswerClasses.canonicalKey($0.text)) ? $0.direction : nil }
    }

    /// Whether the embedding is nearer (in cosine) to a request the teacher answered with a new class than to the
    /// nearest exemplar of the class the student predicts for it (`prediction.novelty`); false without novelty.
    public func nearerToNewClass(_ embedding: [Float], than prediction: StudentPrediction) -> Bool {
        guard let novelty = prediction.novelty, !newClassDirections.isEmpty, let query = Self.unit(embedding) else { return false }
        let learned = 1 - novelty
        return query.withUnsafeBufferPointer { q in
            newClassDirections.contains { direction in
                direction.count == q.count
                    && direction.withUnsafeBufferPointer { dot(q.baseAddress!, $0.baseAddress!, count: q.count) } > learned
            }
        }
    }

    static func unit(_ vector: [Float]) -> [Float]? {
        let norm = vector.reduce(0) { $0 + $1 * $1 }.squareRoot()
        return norm > 0 && norm.isFinite ? vector.map { $0 / norm } : nil
    }
}
