import Foundation
import SeededRandom
import Testing

@testable import Student

/// New classes among the teacher's answers, and the requests nearer to them than to what the student learned.
@Suite struct UnknownAnswersTests {
    static let classes = AnswerClasses(answers: ["a", "a", "a", "b", "b", "b"], minSupport: 3)

    /// A prediction of class "a" whose nearest exemplar is at cosine distance `novelty`.
    static func prediction(novelty: Float) -> StudentPrediction {
        StudentPrediction(
            classIndex: 0, answer: "a", confidence: 0.99, isConfident: true, novelty: novelty, novel: false, borderline: false)
    }

    /// A unit vector at `angle` (radians) from the first axis, toward the second, plus seeded noise in the other six.
    static func direction(_ angle: Float, noise: Float = 0, using generator: inout SplitMix64) -> [Float] {
        [cos(angle), sin(angle)] + (0..<6).map { _ in Float.random(in: -noise...noise, using: &generator) }
    }

    @Test func aRecurringUnknownAnswerIsANewClassAndItsRequestsAreNearerThanTheLearnedClass() {
        var generator = SplitMix64(seed: 3)
        var unknown = UnknownAnswers(limit: 500, minSupport: 3)
        // The teacher answers "c" (none of the classes) to requests around the second axis; "b" is a class.
        for answer in ["c", "b", "C.", "c "] {
            unknown.add(answer, embedding: Self.direction(.pi / 2, noise: 0.05, using: &generator), classes: Self.classes)
        }
        #expect(unknown.newClasses.map(\.answer) == ["c"] && unknown.newClasses.first?.count == 3)
        // Predicted "a", its nearest exemplar at cosine 0.9 (distance 0.1).
        let learned = Self.prediction(novelty: 0.1)
        // A request within ~10° of the new class's requests (cosine > 0.95), ~80° from the first axis: nearer to "c".
        #expect(unknown.nearerToNewClass(Self.direction(.pi / 2 - 0.1, using: &generator), than: learned))
        // Near the first axis (an exemplar of "a" at cosine 0.9 is nearer): served as learned.
        #expect(!unknown.nearerToNewClass(Self.direction(0.2, using: &generator), than: learned))
        // Without novelty information there is nothing to compare with.
        var bare = learned
        bare.novelty = nil
        #expect(!unknown.nearerToNewClass(Self.direction(.pi / 2, using: &generator), than: bare))
    }

    @Test func anAnswerGivenLessThanMinSupportTimesTurnsNothingAway() {
        var generator = SplitMix64(seed: 4)
        var unknown = UnknownAnswers(limit: 500, minSupport: 3)
        for _ in 0..<2 { unknown.add("c", embedding: Self.direction(.pi / 2, using: &generator), classes: Self.classes) }
        #expect(unknown.newClasses.isEmpty)
        #expect(!unknown.nearerToNewClass(Self.direction(.pi / 2, using: &generator), than: Self.prediction(novelty: 0.5)))
        // Answers without an embedding count toward the class, but turn nothing away themselves.
        unknown.add("c", embedding: nil, classes: Self.classes)
        #expect(unknown.newClasses.map(\.answer) == ["c"])
        #expect(unknown.nearerToNewClass(Self.direction(.pi / 2, using: &generator), than: Self.prediction(novelty: 0.5)))
    }

    @Test func onlyTheLatestAnswersAreKept() {
        var generator = SplitMix64(seed: 5)
        var unknown = UnknownAnswers(limit: 4, minSupport: 3)
        for _ in 0..<3 { unknown.add("c", embedding: Self.direction(.pi / 2, using: &generator), classes: Self.classes) }
        #expect(!unknown.newClasses.isEmpty)
        for _ in 0..<3 { unknown.add("d", embedding: Self.direction(.pi, using: &generator), classes: Self.classes) }
        #expect(unknown.count == 4 && unknown.newClasses.map(\.answer) == ["d"])
        #expect(!unknown.nearerToNewClass(Self.direction(.pi / 2, using: &generator), than: Self.prediction(novelty: 0.5)))
    }
}
