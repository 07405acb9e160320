import CacheVerification
import Testing

@Suite struct AnswerEquivalenceTests {
    let equivalence = AnswerEquivalence()

    @Test func shortAnswersMatchOnceNormalized() {
        #expect(equivalence.areEquivalent("Yes.", "yes"))
        #expect(equivalence.areEquivalent("card_arrival", "Card arrival"))
        #expect(equivalence.areEquivalent("  The fee is   $5. ", "the fee is $5"))
        #expect(!equivalence.areEquivalent("The fee is $5.", "The fee is $50."))
        #expect(!equivalence.areEquivalent("2.5%", "25%"))
        #expect(!equivalence.areEquivalent("yes", "no"))
    }

    @Test func longAnswersNeedCloseEmbeddingsAndTheSameFacts() {
        let a = "You can order a new card in the app under Cards. Delivery takes about five working days and the first card is free."
        let b = "Order a replacement in the app (Cards section); it arrives within roughly five working days, and your first card is free of charge."
        let close: ([Float], [Float]) = ([1, 0], [0.97, (1 - 0.97 * 0.97).squareRoot()])
        let far: ([Float], [Float]) = ([1, 0], [0.8, 0.6])
        #expect(equivalence.areEquivalent(a, b, vectors: close))
        #expect(!equivalence.areEquivalent(a, b, vectors: far))
        #expect(!equivalence.areEquivalent(a, b), "no vectors: only the same text is the same answer")
        let otherNumber = b.replacingOccurrences(of: "five", with: "ten")
        #expect(!equivalence.areEquivalent(a, otherNumber, vectors: close), "the same gist with another number is another answer")
        let negated = b.replacingOccurrences(of: "is free of charge", with: "is not free")
        #expect(!equivalence.areEquivalent(a, negated, vectors: close))
    }
}
