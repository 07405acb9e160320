import Foundation
import Testing

@testable import Embedding

@Suite struct TokenizerTests {
    /// Cases beyond the golden file. Expected ids from HuggingFace `tokenizers` 0.23.3 (`BertTokenizer` of
    /// transformers 5.23 over this vocab.txt), the tokenizer sentence-transformers runs.
    @Test(arguments: [
        // Special tokens written in the text are matched verbatim, before normalization.
        ("hello[SEP]world [CLS] [cls] [MASK]x [UNK]", [101, 7592, 102, 2088, 101, 1031, 18856, 2015, 1033, 103, 1060, 100, 102]),
        ("[SE", [101, 1031, 7367, 102]),
        // Control characters go before whitespace is considered: \v, \f and U+0085 join words; U+2028 and
        // no-break space separate them.
        ("a\u{0B}b c\u{0C}d e\u{85}f g\u{2028}h i\u{A0}j", [101, 11113, 3729, 1041, 2546, 1043, 1044, 1045, 1046, 102]),
        // Format and private-use characters are dropped, an unassigned code point is kept (and unknown).
        ("a\u{200D}b a\u{E000}b a\u{0378}b", [101, 11113, 11113, 100, 102]),
        // Per-character lower-casing: no final sigma.
        ("ΟΔΟΣ", [101, 1169, 29722, 29730, 29733, 102]),
        // Accents go through canonical decomposition; Ø has none.
        ("İstanbul ÆØÅ x\u{301}y", [101, 9960, 1097, 16415, 2050, 1060, 2100, 102]),
        // No compatibility normalization.
        ("ﬁne ½", [101, 1984, 2638, 1092, 102]),
        // CJK Extension E counts from U+2B920 in `tokenizers`.
        ("x\u{2B820}y x\u{2B920}y", [101, 100, 1060, 100, 1061, 102]),
        // A word longer than 100 characters is one [UNK].
        (String(repeating: "a", count: 101), [101, 100, 102]),
    ] as [(String, [Int32])])
    func matchesTheReferenceTokenizer(text: String, expected: [Int32]) throws {
        #expect(try Fixtures.tokenizer().encode(text) == expected)
    }

    @Test func aWordOfAHundredCharactersIsStillSplit() throws {
        let ids = try Fixtures.tokenizer().encode(String(repeating: "a", count: 100))
        #expect(ids.count == 52)
        #expect(Array(ids.prefix(3)) == [101, 13360, 11057])
        #expect(Array(ids.suffix(2)) == [2050, 102])
    }

    @Test func truncatesToTheWindowIncludingSpecialTokens() throws {
        let tokenizer = try Fixtures.tokenizer()
        let words = tokenizer.encode(String(repeating: "hello ", count: 300))
        #expect(words == [101] + Array(repeating: 7592, count: 254) + [102])
        let specials = tokenizer.encode(String(repeating: "[SEP]", count: 300))
        #expect(specials == [101] + Array(repeating: 102, count: 255))

        let short = try WordPieceTokenizer(
            vocabularyFile: Fixtures.modelDirectory.appendingPathComponent("vocab.txt"), maxLength: 4)
        #expect(short.encode("hello hello hello") == [101, 7592, 7592, 102])
        #expect(short.encode("") == [101, 102])
    }

    // A small vocabulary makes WordPiece's rules visible.
    static let tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "un", "##aff", "##able", "a", "##ff", "aff", "!", "##!"]

    @Test func wordPieceIsGreedyLongestMatchFirst() throws {
        let tokenizer = try WordPieceTokenizer(tokens: Self.tokens)
        // "unaffable": un ##aff ##able; "affable": aff ##able (not a ##ff ##able).
        #expect(tokenizer.encode("unaffable affable") == [2, 5, 6, 7, 10, 7, 3])
    }

    @Test func aWordWithAnUnmatchedPartIsOneUnknown() throws {
        let tokenizer = try WordPieceTokenizer(tokens: Self.tokens)
        #expect(tokenizer.encode("unaffablex un") == [2, 1, 5, 3])
    }

    @Test func punctuationIsItsOwnWordAndNeverAContinuation() throws {
        let tokenizer = try WordPieceTokenizer(tokens: Self.tokens)
        #expect(tokenizer.encode("un!un") == [2, 5, 11, 5, 3])
    }

    @Test func vocabularyFileLinesAreIDs() throws {
        let directory = try TemporaryDirectory()
        // CRLF line ends, a duplicate (the later line wins) and a final newline.
        let file = directory.url.appendingPathComponent("vocab.txt")
        try "[PAD]\r\n[UNK]\r\n[CLS]\r\n[SEP]\r\nhi\r\nhi\r\n".write(to: file, atomically: true, encoding: .utf8)
        let tokenizer = try WordPieceTokenizer(vocabularyFile: file)
        #expect(tokenizer.vocabularySize == 6)
        #expect(tokenizer.encode("hi") == [2, 5, 3])
    }

    @Test func missingVocabularyOrSpecialTokensAreErrors() throws {
        let directory = try TemporaryDirectory()
        let missing = directory.url.appendingPathComponent("vocab.txt")
        #expect(throws: ModelLoadError.fileNotFound(path: missing.path)) {
            try WordPieceTokenizer(vocabularyFile: missing)
        }
        #expect(throws: ModelLoadError.invalidVocabulary(path: "<memory>", reason: "missing special token [SEP]")) {
            try WordPieceTokenizer(tokens: ["[PAD]", "[UNK]", "[CLS]", "hello"])
        }
    }
}
