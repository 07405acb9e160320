import CacheVerification
import Testing

/// Each mismatch signal on pairs it must catch, and on paraphrases it must let through.
@Suite struct MismatchTests {
    func mismatch(_ a: String, _ b: String) -> Mismatch { Mismatch(TextSignature(a), TextSignature(b)) }

    @Test func negation() {
        #expect(mismatch("Is my card payment pending?", "Is my card payment not pending?").negation)
        #expect(mismatch("Why is my transfer pending?", "Why isn't my transfer pending?").negation)
        #expect(mismatch("I received my card", "I never received my card").negation)
        #expect(mismatch("Can I top up by cheque?", "Can't I top up by cheque?").negation)
        // Paraphrases: the same negation spelled differently, or negated on both sides.
        #expect(!mismatch("I haven't received my card", "I have not received my card").negation)
        #expect(!mismatch("My card hasn't arrived yet", "I still haven't got my card").negation)
        #expect(!mismatch("I can't log in", "I cannot sign in").negation)
        #expect(!mismatch("Is my card payment pending?", "Is the payment on my card still pending?").negation)
    }

    @Test func numbers() {
        #expect(mismatch("transfer $50", "transfer $500").numbers)
        #expect(mismatch("It has been 2 weeks", "It has been 3 weeks").numbers)
        #expect(mismatch("Why was I charged 1.50 euros?", "Why was I charged 15 euros?").numbers)
        #expect(mismatch("I need two cards", "I need three cards").numbers)
        // The same amount written another way; a number on one side only is not a conflict.
        #expect(!mismatch("transfer $50", "transfer 50 dollars").numbers)
        #expect(!mismatch("It has been 2 weeks", "It has been two weeks").numbers)
        #expect(!mismatch("I was charged $1,000.00", "I was charged 1000 dollars").numbers)
        #expect(!mismatch("Where is my card?", "I ordered my card 2 weeks ago, where is it?").numbers)
    }

    @Test func names() {
        #expect(mismatch("Can I top up with Apple Pay?", "Can I top up with Google Pay?").names)
        #expect(mismatch("Do you support Visa cards?", "Do you support Mastercard cards?").names)
        #expect(mismatch("Can I use my card in the US?", "Can I use my card in the UK?").names)
        #expect(mismatch("Send $20 to my sister", "Send €20 to my sister").names)
        // A capital that only starts a sentence is no name; the same name either way is no mismatch.
        #expect(!mismatch("Where is my card?", "where is my card").names)
        #expect(!mismatch("Do you accept Visa?", "Is Visa accepted?").names)
        #expect(!mismatch("Transfer failed. Why?", "Why did the transfer fail? Help").names)
        #expect(!mismatch("I want to pay 20 pounds", "I want to pay £20").names)
        // A rewording in lower case names the same thing; another name in lower case is still another.
        #expect(!mismatch("Can I top up with Apple Pay?", "hi, can i top up with apple pay? thanks").names)
        #expect(!mismatch("Does delivery to the US take long?", "does delivery to the us take long").names)
        #expect(mismatch("i'd rather get a mastercard", "I'd rather get a Visa").names)
        #expect(mismatch("Can I exchange GBP to AUD?", "can i exchange gbp to usd?").names)
    }

    @Test func oppositeActions() {
        #expect(mismatch("turn on the lights", "turn off the lights").oppositeAction)
        #expect(mismatch("I deposited cash and the rate is wrong", "I withdrew cash and the rate is wrong").oppositeAction)
        #expect(mismatch("How do I activate my card?", "How do I deactivate my card?").oppositeAction)
        #expect(mismatch("Why was my transfer declined?", "Why was my transfer accepted?").oppositeAction)
        #expect(mismatch("Please lock my card", "Please unlock my card").oppositeAction)
        #expect(mismatch("How do I enable notifications?", "How do I disable notifications?").oppositeAction)
        #expect(mismatch("I want to cancel my card", "I want to activate my card").oppositeAction)
        #expect(mismatch("Why can't I send money?", "Why can't I receive money?").oppositeAction)
        // Paraphrases keep the action.
        #expect(!mismatch("turn on the lights", "switch on the lights").oppositeAction)
        #expect(!mismatch("How do I activate my card?", "How can I get my card activated?").oppositeAction)
        #expect(!mismatch("My payment was declined", "The payment got declined").oppositeAction)
    }

    @Test func contentDistance() {
        #expect(mismatch("Where is my new card?", "where is my new card").contentDistance == 0)
        #expect(mismatch("card arrival", "exchange rate").contentDistance == 1)
        let partial = mismatch("When will my new card arrive?", "When will my new phone arrive?").contentDistance
        #expect(partial > 0 && partial < 1)
    }

    @Test func stemsFormsAlike() {
        #expect(Set(["declined", "declines", "declining", "decline"].map(TextSignature.stem)).count == 1)
        #expect(TextSignature.stem("cancelled") == TextSignature.stem("cancel"))
        #expect(TextSignature.stem("charges") == TextSignature.stem("charge"))
    }

    @Test func signatureReadsNumbersAndNegations() {
        let signature = TextSignature("I didn't get the $1,000.00 or the two refunds, nothing.")
        #expect(signature.negations == 2)
        #expect(signature.numbers == ["1000", "2"])
        #expect(signature.names == ["usd"])
    }
}
