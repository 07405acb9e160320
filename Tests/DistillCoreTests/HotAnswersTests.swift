import CacheVerification
import Foundation
import Testing

@testable import DistillCore

@Suite struct HotAnswersTests {
    static func answer(_ text: String) -> HotAnswers.Answer {
        HotAnswers.Answer(text: text, finishReason: "stop", expiresAt: nil)
    }

    /// Room for exactly three answers of this size.
    static let budget = 3 * answer("x").bytes

    @Test func theLeastRecentlyUsedGoesFirstAtTheBudget() {
        var hot = HotAnswers(capacityBytes: Self.budget)
        for id in Int64(1)...3 { hot.insert(Self.answer("x"), for: id) }
        #expect(hot.answer(for: 1) != nil, "1 is now the most recently used")
        hot.insert(Self.answer("y"), for: 4)
        #expect(hot.answer(for: 2) == nil, "2 was the least recently used")
        #expect(hot.answer(for: 1) == Self.answer("x") && hot.answer(for: 3) != nil && hot.answer(for: 4) == Self.answer("y"))
        #expect(hot.count == 3 && hot.bytes == Self.budget)
    }

    @Test func aLargerAnswerMakesRoomForItselfAndOneBeyondTheBudgetIsNotHeld() {
        var hot = HotAnswers(capacityBytes: Self.budget)
        for id in Int64(1)...3 { hot.insert(Self.answer("x"), for: id) }
        let double = Self.answer(String(repeating: "x", count: Self.answer("x").bytes + 1))
        hot.insert(double, for: 4)
        #expect(hot.answer(for: 1) == nil && hot.answer(for: 2) == nil && hot.answer(for: 3) != nil && hot.answer(for: 4) == double)
        hot.insert(Self.answer(String(repeating: "x", count: Self.budget)), for: 5)
        #expect(hot.answer(for: 5) == nil && hot.count == 2, "too large: not held, and nothing evicted for it")
    }

    @Test func removedAndReplacedAnswersGiveBackTheirBytes() {
        var hot = HotAnswers(capacityBytes: Self.budget)
        hot.insert(Self.answer("x"), for: 1)
        hot.insert(Self.answer("xx"), for: 1)
        #expect(hot.count == 1 && hot.bytes == Self.answer("xx").bytes && hot.answer(for: 1) == Self.answer("xx"))
        hot.remove(1)
        hot.remove(1)
        #expect(hot.count == 0 && hot.bytes == 0 && hot.answer(for: 1) == nil)
        // Vacated nodes are reused, and the order still holds.
        for id in Int64(2)...5 { hot.insert(Self.answer("x"), for: id) }
        #expect(hot.answer(for: 2) == nil && hot.answer(for: 3) != nil && hot.count == 3)
    }

    @Test func aSignatureCountsInTheBudgetAndGoesWithItsAnswer() {
        let signature = TextSignature("Is my Visa card still not here after 2 weeks?")
        var hot = HotAnswers(capacityBytes: Self.budget + signature.approximateBytes)
        for id in Int64(1)...3 { hot.insert(Self.answer("x"), for: id) }
        hot.setSignature(signature, for: 9)
        #expect(hot.count == 3 && hot.bytes == Self.budget, "not held: nothing to sign")
        hot.setSignature(signature, for: 1)
        #expect(hot.count == 3 && hot.bytes == Self.budget + signature.approximateBytes)
        #expect(hot.answer(for: 1)?.signature == signature)
        // Signing another goes beyond the budget: the least recently used go (3, then 1), not the one signed.
        #expect(hot.answer(for: 3) != nil && hot.answer(for: 1) != nil)
        hot.setSignature(signature, for: 2)
        #expect(hot.answer(for: 3) == nil && hot.answer(for: 1) == nil && hot.answer(for: 2)?.signature == signature)
        #expect(hot.count == 1 && hot.bytes == Self.answer("x").bytes + signature.approximateBytes)
        // Held again (a store read after a removal), the answer has no signature until it is signed again.
        hot.remove(2)
        #expect(hot.bytes == 0)
        hot.insert(Self.answer("x"), for: 2)
        #expect(hot.answer(for: 2)?.signature == nil && hot.bytes == Self.answer("x").bytes)
    }

    @Test func anAnswerKnowsWhenItHasExpired() {
        let now = Date(timeIntervalSince1970: 1_000)
        #expect(!Self.answer("x").hasExpired(now))
        #expect(HotAnswers.Answer(text: "x", finishReason: "stop", expiresAt: now).hasExpired(now))
        #expect(!HotAnswers.Answer(text: "x", finishReason: "stop", expiresAt: now + 1).hasExpired(now))
    }
}
