/// Requests the teacher answered otherwise than a serving student predicted (while it was unsure, abstained, or was
/// audited): evidence, gathered since the student started serving, of where its classes are wrong. A request nearer
/// to one of them than to the nearest training answer of its predicted class is not served.
///
/// Novelty measures the distance to what the student learned; it cannot tell a new intent from a learned one that
/// lies as near (on Banking77's grouped rows: `Refund_not_showing_up` served as `request_refund`). The teacher's
/// answers to the requests it did not serve can: on the 3,000-then-1,000 check this turned away 7 more requests of
/// 307, all of them wrong (95.4% to 97.0% agreement), and 1 of 971 on a shuffled student's traffic.
public struct Counterexamples: Sendable {
    /// Kept at most; the oldest go first.
    public let limit: Int
    /// Unit-length embeddings, oldest first.
    private var rows: [[Float]] = []

    public init(limit: Int) {
        precondition(limit >= 0, "the limit must not be negative")
        self.limit = limit
    }

    public var count: Int { rows.count }

    public mutating func add(_ embedding: [Float]) {
        guard limit > 0, let unit = Self.unit(embedding) else { return }
        if rows.count == limit { rows.removeFirst() }
        rows.append(unit)
    }

    /// Whether the request is nearer to a counterexample than to the nearest training answer of its predicted class
    /// (`prediction.novelty`); never for a student without novelty exemplars, nor before any counterexample.
    public func contradict(_ prediction: StudentPrediction, embedding: [Float]) -> Bool {
        guard let novelty = prediction.novelty, !rows.isEmpty, let query = Self.unit(embedding) else { return false }
        return nearestSimilarity(query) > 1 - novelty
    }

    /// The greatest cosine similarity between a unit-length query and a counterexample of its dimension.
    func nearestSimilarity(_ query: [Float]) -> Float {
        var best = -Float.infinity
        query.withUnsafeBufferPointer { q in
            for row in rows where row.count == query.count {
                row.withUnsafeBufferPointer { best = max(best, dot(q.baseAddress!, $0.baseAddress!, count: query.count)) }
            }
        }
        return best
    }

    static func unit(_ embedding: [Float]) -> [Float]? {
        let norm = embedding.reduce(0) { $0 + $1 * $1 }.squareRoot()
        guard norm > 0, norm.isFinite else { return nil }
        return embedding.map { $0 / norm }
    }
}
