import Foundation

/// What the mismatch signals read from one text: computed once per text (a query, or a cached
/// entry's prompt), compared in pairs by `Mismatch`.
public struct TextSignature: Sendable, Equatable {
    /// Negation cues: "not", "never", "no", the "n't" of "isn't", …
    public var negations: Int
    /// The numbers it states, normalized ("$1,000.00" and "1000" are both "1000"; "two" is "2"), sorted.
    public var numbers: [String]
    /// Names: words capitalized where a sentence does not start, words with capitals inside
    /// ("GBP", "iPhone"), and currencies ("$", "euros" are "eur"), lower-cased.
    public var names: Set<String>
    /// Content words (no function words, no numbers), stemmed.
    public var words: Set<String>
    /// Every word, stemmed, function words included: opposite actions are often particles ("on", "off").
    public var allWords: Set<String>

    public init(_ text: String) {
        var negations = 0
        var numbers: [String] = []
        var names: Set<String> = []
        var words: Set<String> = []
        var allWords: Set<String> = []
        for token in Self.tokens(of: text) {
            switch token {
            case .number(let value):
                numbers.append(value)
            case .currency(let code):
                names.insert(code)
            case .word(let raw, let sentenceStart):
                var word = raw.lowercased()
                if let base = Self.contractedNegation(word) {
                    negations += 1
                    word = base
                }
                if Self.negationCues.contains(word) {
                    negations += 1
                    continue
                }
                if let value = Self.numberWords[word] {
                    numbers.append(value)
                    continue
                }
                if let code = Self.currencyWords[word] {
                    names.insert(code)
                    continue
                }
                if Self.isName(raw, sentenceStart: sentenceStart) { names.insert(word) }
                let stem = Self.stem(word)
                allWords.insert(stem)
                if !Self.functionWords.contains(word) { words.insert(stem) }
            }
        }
        self.negations = negations
        self.numbers = numbers.sorted()
        self.names = names
        self.words = words
        self.allWords = allWords
    }

    /// What holding it costs, roughly: each collection's storage, a slot per element, and the
    /// bytes of strings too long to be stored inline (over 15 UTF-8 bytes).
    public var approximateBytes: Int {
        func cost(_ strings: some Sequence<String>) -> Int {
            strings.reduce(64) { $0 + 24 + ($1.utf8.count > 15 ? 32 + $1.utf8.count : 0) }
        }
        return cost(numbers) + cost(names) + cost(words) + cost(allWords)
    }

    /// Whether the text names `name` (one of another text's `names`), written as a name or not:
    /// a rewording in lower case still names the same thing.
    func mentions(_ name: String) -> Bool {
        names.contains(name) || allWords.contains(Self.stem(name))
    }

    // MARK: - Tokens

    enum Token: Equatable {
        case word(String, sentenceStart: Bool)
        case number(String)
        case currency(String)
    }

    /// Words (letters and apostrophes), numbers (digits with their separators) and currency symbols.
    static func tokens(of text: String) -> [Token] {
        // ASCII is its own NFKC form and has no typographic apostrophe: Foundation's normalization
        // and replacement were over half of this function's time.
        let isASCII = text.utf8.allSatisfy { $0 < 0x80 }
        let characters = Array(
            isASCII ? text : text.precomposedStringWithCompatibilityMapping.replacingOccurrences(of: "\u{2019}", with: "'"))
        var tokens: [Token] = []
        var sentenceStart = true
        var index = 0
        while index < characters.count {
            let character = characters[index]
            if character.isLetter {
                var end = index
                while end < characters.count, characters[end].isLetter || (characters[end] == "'" && end + 1 < characters.count && characters[end + 1].isLetter) {
                    end += 1
                }
                tokens.append(.word(String(characters[index..<end]), sentenceStart: sentenceStart))
                sentenceStart = false
                index = end
            } else if character.isNumber {
                var end = index
                // Separators count only between digits: "1,000.50" is one number, "5, 6" two.
                while end < characters.count, characters[end].isNumber
                    || ([",", "."].contains(characters[end]) && end + 1 < characters.count && characters[end + 1].isNumber)
                {
                    end += 1
                }
                tokens.append(.number(Self.normalizedNumber(String(characters[index..<end]))))
                sentenceStart = false
                index = end
            } else {
                if let code = Self.currencySymbols[character] { tokens.append(.currency(code)) }
                if [".", "?", "!", ":", "\n"].contains(character) { sentenceStart = true }
                index += 1
            }
        }
        return tokens
    }

    /// "1,000.00" → "1000", "2.50" → "2.5", "007" → "7".
    static func normalizedNumber(_ text: String) -> String {
        var digits = text.replacingOccurrences(of: ",", with: "")
        if digits.contains(".") {
            while digits.hasSuffix("0") { digits.removeLast() }
            if digits.hasSuffix(".") { digits.removeLast() }
        }
        while digits.count > 1, digits.hasPrefix("0"), !digits.hasPrefix("0.") { digits.removeFirst() }
        return digits
    }

    /// A capital where a sentence does not start it, or a capital after the first letter: "Visa" in
    /// "pay with Visa", "GBP", "iPhone". "I" and its contractions are not names.
    static func isName(_ word: String, sentenceStart: Bool) -> Bool {
        let letters = Array(word)
        guard let first = letters.first else { return false }
        if letters.dropFirst().contains(where: \.isUppercase) { return true }
        guard first.isUppercase, !sentenceStart else { return false }
        return !(word == "I" || word.hasPrefix("I'"))
    }

    // MARK: - Words

    /// The base of a contracted negation ("isn't" → "is", "can't" → "can", "won't" → "will").
    static func contractedNegation(_ word: String) -> String? {
        switch word {
        case "cannot", "can't": return "can"
        case "won't": return "will"
        case "shan't": return "shall"
        case "ain't": return "is"
        default: return word.hasSuffix("n't") ? String(word.dropLast(3)) : nil
        }
    }

    /// A crude suffix stemmer, the same on both sides of every comparison: "declined", "declines",
    /// "declining" and "decline" are all "declin"; "cancelled" and "cancel" are "cancel".
    public static func stem(_ word: String) -> String {
        var stem = word.hasSuffix("'s") ? String(word.dropLast(2)) : word
        if stem.count >= 5, stem.hasSuffix("ies") {
            stem = String(stem.dropLast(3)) + "y"
        } else if stem.count >= 6, stem.hasSuffix("ing") {
            stem.removeLast(3)
        } else if stem.count >= 5, stem.hasSuffix("ed") {
            stem.removeLast(2)
        } else if stem.count >= 5, stem.hasSuffix("es") {
            stem.removeLast(2)
        } else if stem.count >= 4, stem.hasSuffix("s"), !stem.hasSuffix("ss") {
            stem.removeLast()
        }
        if stem.count >= 5, stem.hasSuffix("e") { stem.removeLast() }
        let letters = Array(stem)
        if letters.count >= 3, letters[letters.count - 1] == letters[letters.count - 2], !"aeiou".contains(letters.last!) {
            stem.removeLast()
        }
        return stem
    }

    static let negationCues: Set<String> = [
        "not", "no", "never", "none", "nothing", "nobody", "nowhere", "neither", "nor", "without",
    ]

    static let numberWords: [String: String] = [
        "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6", "seven": "7",
        "eight": "8", "nine": "9", "ten": "10", "eleven": "11", "twelve": "12", "fifteen": "15", "twenty": "20",
        "thirty": "30", "forty": "40", "fifty": "50", "hundred": "100", "thousand": "1000", "once": "1", "twice": "2",
        "single": "1", "double": "2", "half": "0.5",
    ]

    static let currencySymbols: [Character: String] = ["$": "usd", "£": "gbp", "€": "eur", "¥": "jpy", "₹": "inr"]

    static let currencyWords: [String: String] = [
        "dollar": "usd", "dollars": "usd", "usd": "usd", "pound": "gbp", "pounds": "gbp", "gbp": "gbp",
        "euro": "eur", "euros": "eur", "eur": "eur", "yen": "jpy", "jpy": "jpy", "rupee": "inr", "rupees": "inr",
    ]

    /// English function words: they carry grammar, not what a request is about.
    static let functionWords: Set<String> = [
        "a", "an", "the", "and", "or", "but", "if", "then", "so", "because", "as", "of", "at", "by", "for", "with",
        "about", "to", "from", "in", "on", "into", "onto", "over", "under", "up", "down", "out", "off", "again",
        "i", "me", "my", "mine", "myself", "you", "your", "yours", "we", "us", "our", "it", "its", "they", "them",
        "their", "he", "she", "him", "her", "his", "this", "that", "these", "those", "there", "here",
        "am", "is", "are", "was", "were", "be", "been", "being", "do", "does", "did", "have", "has", "had",
        "can", "could", "will", "would", "shall", "should", "may", "might", "must",
        "what", "which", "who", "whom", "whose", "when", "where", "why", "how",
        "i'm", "i've", "i'd", "i'll", "it's", "you're", "that's", "there's", "what's", "let's", "we're",
        "just", "still", "yet", "also", "too", "very", "really", "please", "any", "some", "all", "each",
        "get", "got", "want", "need", "like", "know", "tell", "help", "way", "thing",
    ]
}
