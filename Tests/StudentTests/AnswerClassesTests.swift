import Foundation
import Testing

@testable import Student

@Suite struct AnswerClassesTests {
    @Test(arguments: [
        ("yes", "yes"), ("Yes.", "yes"), ("  YES  ", "yes"), ("\"Yes\"", "yes"), ("`yes`", "yes"), ("'yes.'", "yes"),
        ("Card  arrival\n", "card arrival"), ("Caf\u{65}\u{301}", "caf\u{e9}"), ("...", ""), ("", ""), ("\"", "\""),
    ])
    func canonicalKeys(text: String, key: String) {
        #expect(AnswerClasses.canonicalKey(text) == key)
    }

    @Test func classesAreTheAnswersThatRecurInOrderOfFirstAppearance() {
        let classes = AnswerClasses(
            answers: ["b", "a", "Yes.", "a", "yes", "b", "once", "", "", "", "yes", "a"], minSupport: 2)
        #expect(classes.answers == ["b", "a", "yes"])
        #expect(classes.supports == [2, 3, 3])
        #expect(classes.count == 3 && classes.restIndex == 3 && classes.outputCount == 4)
        #expect(classes.index(of: "YES") == 2)
        #expect(classes.index(of: "once") == nil)
        #expect(classes.index(of: "") == nil)
    }

    @Test func aClassIsServedAsItsMostFrequentTextTheFirstOfEquals() {
        let classes = AnswerClasses(answers: ["Yes.", "yes", "YES", "yes", "No", "no."], minSupport: 1)
        #expect(classes.answers == ["yes", "No"])
    }

    @Test func storedClassesMustBeDistinctAndNotEmpty() throws {
        #expect(throws: StudentModelDecodingError.self) { try AnswerClasses(answers: ["Yes", "yes."], supports: [1, 1]) }
        #expect(throws: StudentModelDecodingError.self) { try AnswerClasses(answers: ["..."], supports: [1]) }
        #expect(throws: StudentModelDecodingError.self) { try AnswerClasses(answers: ["a"], supports: [1, 2]) }
        #expect(try AnswerClasses(answers: ["a", "b"], supports: [4, 5]).supports == [4, 5])
    }

    let classes = AnswerClasses(
        answers: ["card_arrival", "card_delivery_estimate", "billing_issue", "top_up_failed", "yes"], minSupport: 1)

    @Test func withoutAlternativesTheTargetIsTheHardAnswer() {
        #expect(classes.target(answer: "Billing_issue") == TrainingTarget(label: 2))
        #expect(classes.target(answer: "something else entirely") == TrainingTarget(label: classes.restIndex))
    }

    @Test func alternativesBecomeARenormalizedDistributionOverClasses() {
        let target = classes.target(
            answer: "card_arrival",
            alternatives: [
                ("card_arrival", log(0.5)), ("card_delivery_estimate", log(0.2)), ("not a class", log(0.1)),
                ("Yes", log(0.05)), ("yes.", log(0.05)),
            ])
        #expect(target.label == 0)
        #expect(target.distribution.map(\.classIndex) == [0, 1, 4])
        let probabilities = target.distribution.map(\.probability)
        for (probability, expected) in zip(probabilities, [0.5 / 0.8, 0.2 / 0.8, 0.1 / 0.8] as [Float]) {
            #expect(abs(probability - expected) < 1e-6)
        }
    }

    @Test func aFirstTokenStandsForTheOneClassItBegins() {
        #expect(classes.index(ofAlternative: " billing") == 2)
        #expect(classes.index(ofAlternative: "top") == 3)
        #expect(classes.index(ofAlternative: "card") == nil)  // two classes begin with it
        #expect(classes.index(ofAlternative: "card_d") == 1)
        #expect(classes.index(ofAlternative: "zebra") == nil)
        #expect(classes.index(ofAlternative: " ") == nil)
        let target = classes.target(answer: "billing_issue", alternatives: [("billing", log(0.9)), ("card", log(0.1))])
        #expect(target.distribution == [ClassProbability(classIndex: 2, probability: 1)])
    }

    @Test func theLabelStaysHardWhenTheAlternativesSayTooLittle() {
        // Too little of the listed probability on classes (a real LLM's ambiguous first token).
        #expect(classes.target(answer: "card_arrival", alternatives: [("card", log(0.9)), ("card_arrival", log(0.1))]).distribution.isEmpty)
        // Enough, but none of it on the answer.
        #expect(classes.target(answer: "yes", alternatives: [("card_arrival", log(0.9))]).distribution.isEmpty)
        // The answer is no class.
        #expect(classes.target(answer: "no idea", alternatives: [("card_arrival", log(0.9))]) == TrainingTarget(label: 5))
        // Impossible and malformed log-probabilities count as nothing.
        #expect(classes.target(answer: "yes", alternatives: [("yes", -.infinity), ("card_arrival", .nan)]).distribution.isEmpty)
        // The share is of the listed probability, and its minimum a parameter.
        #expect(classes.target(answer: "yes", alternatives: [("yes", log(0.3))]).distribution.count == 1)
        let half: [(text: String, logprob: Double)] = [("yes", log(0.3)), ("no idea", log(0.3))]
        #expect(classes.target(answer: "yes", alternatives: half).distribution.count == 1)
        #expect(classes.target(answer: "yes", alternatives: half, minimumMatchedShare: 0.6).distribution.isEmpty)
    }
}
