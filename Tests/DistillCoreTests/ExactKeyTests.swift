@testable import DistillCore
import Foundation
import SeededRandom
import Testing

@Suite struct ExactKeyTests {
    /// The key as its definition says: NFC, lower case, runs of white space as one space, trimmed.
    static func definition(_ text: String) -> String {
        text.precomposedStringWithCanonicalMapping.lowercased().split(whereSeparator: \.isWhitespace).joined(separator: " ")
    }

    @Test func messagesThatDifferInCaseAndSpacingShareAKey() {
        #expect(SemanticCache.exactKey("  Where is\tMY card?\r\n") == "where is my card?")
        #expect(SemanticCache.exactKey("Où est ma CARTE ?") == "où est ma carte ?")
        // "é" precomposed and as "e" + combining acute accent.
        #expect(SemanticCache.exactKey("Caf\u{E9}") == SemanticCache.exactKey("Cafe\u{301}"))
        #expect(SemanticCache.exactKey(" \n ") == "")
    }

    @Test func theASCIIPathGivesTheKeyOfTheDefinition() {
        // Every ASCII byte, white space and control characters included, in random seeded texts.
        var generator = SplitMix64(seed: 19)
        for _ in 0..<2_000 {
            let length = Int(generator.next() % 24)
            let bytes = (0..<length).map { _ in
                // Half of the bytes from white space and letters, so that runs and case changes are common.
                generator.next() % 2 == 0 ? Array(" \t\n\r\u{0B}\u{0C}aZ".utf8)[Int(generator.next() % 8)] : UInt8(generator.next() % 128)
            }
            let text = String(decoding: bytes, as: UTF8.self)
            #expect(SemanticCache.asciiExactKey(text) == Self.definition(text), "\(Array(text.utf8))")
        }
        #expect(SemanticCache.asciiExactKey("caf\u{E9}") == nil, "not ASCII: the general path")
    }
}
