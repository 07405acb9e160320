/// How unlike what the student learned a request is: the cosine distance from its embedding to the nearest exemplar
/// of the class the student predicts, exemplars being up to `TrainingConfiguration.noveltyExemplars` of the class's
/// training answers.
///
/// Calibrated confidence only tells classes apart from each other: a request of an intent the student never saw
/// falls near some learned class and gets its confidence. On Banking77 (trained on the first 3,000 train rows, 24
/// intents; queried with test rows of all 77), the nearest exemplar of the predicted class told unseen intents
/// from learned ones better than the confidence, the nearest training answer of any class, the class's centroid,
/// or Mahalanobis distances (plain, shrunk or relative), where it matters: keeping 80–90% of the in-distribution
/// answers. Classes are not one blob in embedding space but several paraphrase clusters; a near neighbour sees
/// them, a centroid or a shared covariance does not.
///
/// No single threshold both keeps in-distribution coverage and stops unseen intents that lie this near learned
/// ones, so there are two, each a quantile of the novelty of the in-distribution answers the student is confident
/// on (fitted in `StudentTrainer`): above `threshold` (99%) it always abstains; above `strictThreshold` (85%) it
/// abstains while a shift of its traffic is suspected (`ShiftRule`), and otherwise serves the answer as borderline
/// (audited more, `AuditPolicy`).
public struct Novelty: Sendable, Hashable {
    /// Always abstain above this distance.
    public let threshold: Float
    /// Abstain above this distance while a shift is suspected; else serve, as borderline.
    public let strictThreshold: Float
    let exemplars: Exemplars

    init(exemplars: Exemplars, threshold: Float, strictThreshold: Float) {
        precondition(strictThreshold <= threshold, "the strict threshold is above the threshold")
        (self.exemplars, self.threshold, self.strictThreshold) = (exemplars, threshold, strictThreshold)
    }

    /// The novelty of an embedding predicted as `classIndex`: 0 (an exemplar's direction) to 2 (the opposite);
    /// NaN for an embedding that is not finite.
    public func score(_ embedding: [Float], classIndex: Int) -> Float {
        exemplars.distance(Exemplars.Query(embedding), classIndex: classIndex)
    }
}

/// Unit-length embeddings per class, int8 with one scale per row (as the network's weights): the novelty score's
/// reference points. A class of n training answers keeps min(n, limit) of them, evenly spread over its answers in
/// training order (the distiller's prompt-hash order: a sample).
struct Exemplars: Sendable, Hashable {
    let dimension: Int
    /// Class c's rows are `classStarts[c]..<classStarts[c + 1]`.
    let classStarts: [Int]
    /// Row-major, each row zero-padded to `stride`.
    let weights: [Int8]
    let scales: [Float]

    var stride: Int { (dimension + 15) / 16 * 16 }
    var classCount: Int { classStarts.count - 1 }

    init(dimension: Int, classStarts: [Int], weights: [Int8], scales: [Float]) {
        (self.dimension, self.classStarts, self.weights, self.scales) = (dimension, classStarts, weights, scales)
        precondition(scales.count == classStarts.last! && weights.count == scales.count * stride)
    }

    /// Up to `limit` of each class's `members` (indices into `embeddings`, in order).
    init(embeddings: [[Float]], members: [[Int]], limit: Int, dimension: Int) {
        var classStarts = [0], rows: [[Float]] = []
        for classMembers in members {
            let kept = classMembers.count <= limit
                ? classMembers : (0..<limit).map { classMembers[$0 * classMembers.count / limit] }
            rows += kept.map { embeddings[$0] }
            classStarts.append(rows.count)
        }
        let stride = (dimension + 15) / 16 * 16
        var weights = [Int8](repeating: 0, count: rows.count * stride), scales = [Float](repeating: 0, count: rows.count)
        for (r, row) in rows.enumerated() {
            let norm = row.reduce(0) { $0 + $1 * $1 }.squareRoot()
            let largest = row.reduce(0) { max($0, abs($1)) }
            guard norm > 0, largest > 0 else { continue }
            scales[r] = largest / norm / 127
            for i in 0..<dimension { weights[r * stride + i] = Int8((row[i] / largest * 127).rounded()) }
        }
        self.init(dimension: dimension, classStarts: classStarts, weights: weights, scales: scales)
    }

    /// An embedding quantized once for all the distances it is measured by.
    struct Query {
        var values: [Int16] = []
        /// Turns an int8 dot product into a cosine (with the row's scale).
        var scale: Float

        init(_ embedding: [Float]) {
            let norm = embedding.reduce(0) { $0 + $1 * $1 }.squareRoot()
            scale = QuantizedNetwork.quantize(embedding, into: &values, stride: (embedding.count + 15) / 16 * 16) / norm
        }
    }

    /// 1 − the greatest cosine similarity between the query and an exemplar of the class (2 when it has none).
    func distance(_ query: Query, classIndex: Int) -> Float {
        precondition(query.values.count == stride, "an embedding of another dimension")
        guard query.scale.isFinite else { return .nan }
        let rows = classStarts[classIndex]..<classStarts[classIndex + 1]
        guard !rows.isEmpty else { return 2 }
        var best = -Float.infinity
        query.values.withUnsafeBufferPointer { q in
            weights.withUnsafeBufferPointer { w in
                for r in rows {
                    best = max(best, Float(dot(q.baseAddress!, w.baseAddress! + r * stride, count: stride)) * scales[r])
                }
            }
        }
        return 1 - best * query.scale
    }
}
