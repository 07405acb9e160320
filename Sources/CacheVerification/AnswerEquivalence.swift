import Foundation

/// Whether a cached answer would have done as well as the teacher's fresh one: the outcome of an
/// exploration. When in doubt it says "different", which only makes the cache more careful.
public struct AnswerEquivalence: Sendable, Equatable {
    /// Answers of at most this many words (normalized) are compared exactly: labels, numbers,
    /// yes/no, short facts.
    public var shortAnswerWords: Int
    /// Longer answers are equivalent when their embeddings are at least this similar, and they
    /// state the same numbers and negations.
    public var minimumAnswerSimilarity: Float

    public init(shortAnswerWords: Int = 12, minimumAnswerSimilarity: Float = 0.95) {
        self.shortAnswerWords = shortAnswerWords
        self.minimumAnswerSimilarity = minimumAnswerSimilarity
    }

    /// `vectors`: the two answers' unit-length embeddings, when the caller has them. Without them
    /// two long answers are equivalent only when they normalize to the same text.
    public func areEquivalent(_ a: String, _ b: String, vectors: ([Float], [Float])? = nil) -> Bool {
        if Self.normalized(a) == Self.normalized(b) { return true }
        guard comparesByMeaning(a, b), let (vectorA, vectorB) = vectors, vectorA.count == vectorB.count else { return false }
        let similarity = zip(vectorA, vectorB).reduce(Float(0)) { $0 + $1.0 * $1.1 }
        guard similarity >= minimumAnswerSimilarity else { return false }
        let (signatureA, signatureB) = (TextSignature(a), TextSignature(b))
        return signatureA.negations == signatureB.negations && signatureA.numbers == signatureB.numbers
    }

    /// Whether the two answers are long enough to be compared by their embeddings (and differ as text).
    public func comparesByMeaning(_ a: String, _ b: String) -> Bool {
        let (normalizedA, normalizedB) = (Self.normalized(a), Self.normalized(b))
        let words = max(normalizedA.split(separator: " ").count, normalizedB.split(separator: " ").count)
        return normalizedA != normalizedB && words > shortAnswerWords
    }

    /// Compatibility-composed, lower case, punctuation dropped, runs of white space as one space.
    public static func normalized(_ answer: String) -> String {
        let text = answer.precomposedStringWithCompatibilityMapping.lowercased()
        // Currency and per-cent signs change what an answer says; other symbols and punctuation do not.
        let kept = text.unicodeScalars.map { scalar -> Character in
            let meaningful = "$£€¥%".unicodeScalars.contains(scalar)
            let dropped = CharacterSet.punctuationCharacters.contains(scalar) || CharacterSet.symbols.contains(scalar)
            return dropped && !meaningful ? " " : Character(scalar)
        }
        return String(kept).split(whereSeparator: \.isWhitespace).joined(separator: " ")
    }
}
