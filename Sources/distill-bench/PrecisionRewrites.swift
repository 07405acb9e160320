import SeededRandom

/// Rewrites of real queries for the cache-precision benchmark: near misses, whose answer must
/// differ from the original's although the embeddings barely move, and rewordings, whose answer
/// is the original's although the text changed. Deterministic given the generator.
enum PrecisionRewrites {
    /// The kinds of near miss, each a stream of the benchmark.
    enum Kind: String, CaseIterable, Codable {
        case negation, numbers, entities, actions
    }

    /// Which half of the word lists a rewrite may draw from: the held-out streams swap in names no
    /// tuning run has seen.
    enum Half { case tuning, heldOut }

    /// The near miss of `kind` for `text`, or nil when the text offers no place for one.
    static func nearMiss(_ kind: Kind, of text: String, half: Half, using generator: inout SplitMix64) -> String? {
        var words = Words(text)
        switch kind {
        case .negation:
            guard words.toggleNegation() else { return nil }
        case .numbers:
            guard words.changeNumber(using: &generator) else { return nil }
        case .entities:
            guard words.swapEntity(half: half, using: &generator) else { return nil }
        case .actions:
            guard words.swapAction() else { return nil }
        }
        return words.text
    }

    /// A rewording of `text` that keeps its meaning: first the kind's own kind of harmless change
    /// where the text allows one (contractions for negations, spelled-out numbers, lower case for
    /// names, synonyms for actions), then a greeting or a closing.
    static func rewording(of text: String, for kind: Kind?, using generator: inout SplitMix64) -> String {
        var words = Words(text)
        switch kind {
        case .negation?: _ = words.toggleContractions()
        case .numbers?: _ = words.respellNumber()
        case .entities?: words.lowercaseAll()
        case .actions?, nil: _ = words.useSynonym(using: &generator)
        }
        var result = words.text
        if generator.nextUnit() < 0.5 {
            let greeting = greetings[Int(generator.next() % UInt64(greetings.count))]
            // "I" and names keep their capital after the greeting.
            let firstWord = result.prefix { $0.isLetter || $0 == "'" }
            let keepsCapital = firstWord == "I" || firstWord.hasPrefix("I'") || firstWord.dropFirst().contains(where: \.isUppercase)
            result = greeting + (keepsCapital ? result : result.prefix(1).lowercased() + result.dropFirst())
        } else {
            // The closing starts a sentence of its own.
            if let last = result.last, !".?!".contains(last) { result += "." }
            result += closings[Int(generator.next() % UInt64(closings.count))]
        }
        return result
    }

    static let greetings = ["Hi, ", "Hello, ", "Quick question: ", "Excuse me, ", "Hey there, "]
    static let closings = [" Thanks.", " Thank you!", " Please help.", " Any ideas?", " Cheers"]
}

/// A text as words and what lies between them, edited a word at a time.
struct Words {
    /// Alternating runs: a word (letters and apostrophes), a number (digits with separators), or anything else.
    private(set) var pieces: [String]

    init(_ text: String) {
        var pieces: [String] = []
        var current = ""
        var currentClass = 0
        func charClass(_ character: Character) -> Int {
            if character.isLetter || character == "'" || character == "\u{2019}" { return 1 }
            if character.isNumber || character == "," || character == "." { return 2 }
            return 3
        }
        for character in text {
            var cls = charClass(character)
            // A separator only belongs to a number between digits.
            if cls == 2, !character.isNumber, currentClass != 2 { cls = 3 }
            if cls != currentClass, !current.isEmpty {
                pieces.append(current)
                current = ""
            }
            current.append(character)
            currentClass = cls
        }
        if !current.isEmpty { pieces.append(current) }
        // A number's trailing separator ("5." at a sentence's end) goes back to the punctuation.
        self.pieces = pieces.flatMap { piece -> [String] in
            guard piece.first?.isNumber == true, let last = piece.last, !last.isNumber else { return [piece] }
            return [String(piece.dropLast()), String(last)]
        }
    }

    var text: String { pieces.joined() }

    private func isWord(_ index: Int) -> Bool { pieces[index].first.map { $0.isLetter } ?? false }
    private func isNumber(_ index: Int) -> Bool { pieces[index].first.map { $0.isNumber } ?? false }
    private var wordIndices: [Int] { pieces.indices.filter(isWord) }

    /// `replacement` in the case of `original`: capitalized when it was, upper case when it was.
    private static func matchCase(_ replacement: String, to original: String) -> String {
        if original.count > 1, original == original.uppercased() { return replacement.uppercased() }
        if original.first?.isUppercase == true { return replacement.prefix(1).uppercased() + replacement.dropFirst() }
        return replacement
    }

    // MARK: - Near misses

    /// Removes every negation, or negates the first auxiliary verb after the first word ("Why is my
    /// payment pending?" → "Why isn't my payment pending?").
    mutating func toggleNegation() -> Bool {
        var removed = false
        for index in wordIndices {
            let word = pieces[index].lowercased().replacingOccurrences(of: "\u{2019}", with: "'")
            if let positive = Self.negatedToPositive[word] {
                pieces[index] = positive.isEmpty ? "" : Self.matchCase(positive, to: pieces[index])
                if positive.isEmpty, index + 1 < pieces.count, pieces[index + 1] == " " { pieces[index + 1] = "" }
                removed = true
            }
        }
        if removed { return true }
        for index in wordIndices.dropFirst() {
            if let negative = Self.positiveToNegated[pieces[index].lowercased()] {
                pieces[index] = Self.matchCase(negative, to: pieces[index])
                return true
            }
        }
        return false
    }

    static let negatedToPositive: [String: String] = [
        "not": "", "never": "", "cannot": "can", "can't": "can", "won't": "will", "don't": "do", "doesn't": "does",
        "didn't": "did", "isn't": "is", "aren't": "are", "wasn't": "was", "weren't": "were", "haven't": "have",
        "hasn't": "has", "hadn't": "had", "couldn't": "could", "wouldn't": "would", "shouldn't": "should",
        "nothing": "something", "nobody": "somebody", "without": "with", "none": "some",
    ]
    static let positiveToNegated: [String: String] = [
        "is": "isn't", "are": "aren't", "was": "wasn't", "were": "weren't", "do": "don't", "does": "doesn't",
        "did": "didn't", "can": "can't", "could": "couldn't", "will": "won't", "would": "wouldn't",
        "should": "shouldn't", "has": "hasn't", "have": "haven't", "had": "hadn't", "am": "am not", "i'm": "I'm not",
    ]

    /// Changes one number: 50 → 500 or 51, two → three.
    mutating func changeNumber(using generator: inout SplitMix64) -> Bool {
        let numbers = pieces.indices.filter(isNumber)
        if !numbers.isEmpty {
            let index = numbers[Int(generator.next() % UInt64(numbers.count))]
            let digits = pieces[index].replacingOccurrences(of: ",", with: "")
            if let value = Int(digits) {
                let changed = generator.nextUnit() < 0.5 || value == 0 ? value * 10 + (value == 0 ? 5 : 0) : value + 1 + Int(generator.next() % 4)
                pieces[index] = String(changed)
            } else {
                pieces[index] = digits + "0"
            }
            return true
        }
        for index in wordIndices {
            let word = pieces[index].lowercased()
            if let position = Self.spelledNumbers.firstIndex(of: word) {
                pieces[index] = Self.matchCase(Self.spelledNumbers[(position + 1) % Self.spelledNumbers.count], to: pieces[index])
                return true
            }
        }
        return false
    }

    static let spelledNumbers = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "twelve", "twenty"]

    /// Swaps a name for another of its kind (a country for a country, a card network for a card network).
    mutating func swapEntity(half: PrecisionRewrites.Half, using generator: inout SplitMix64) -> Bool {
        let words = wordIndices
        for (position, index) in words.enumerated() {
            for entityClass in EntityLists.classes {
                // Names of two words ("Apple Pay") are matched on both.
                for known in entityClass.found {
                    let parts = known.split(separator: " ").map(String.init)
                    // Upper-case names ("US") only as written: "us" is a pronoun.
                    let caseSensitive = known == known.uppercased()
                    guard position + parts.count <= words.count,
                        zip(parts, words[position..<position + parts.count]).allSatisfy({
                            caseSensitive ? $0 == pieces[$1] : $0.lowercased() == pieces[$1].lowercased()
                        })
                    else { continue }
                    let choices = (half == .tuning ? entityClass.tuning : entityClass.heldOut).filter { $0.lowercased() != known.lowercased() }
                    let replacement = choices[Int(generator.next() % UInt64(choices.count))]
                    let last = words[position + parts.count - 1]
                    pieces.replaceSubrange(index...last, with: [replacement])
                    return true
                }
            }
        }
        return false
    }

    /// Replaces the first action word with its opposite ("activate" → "deactivate").
    mutating func swapAction() -> Bool {
        for index in wordIndices {
            if let opposite = Self.oppositeActions[pieces[index].lowercased()] {
                pieces[index] = Self.matchCase(opposite, to: pieces[index])
                return true
            }
        }
        return false
    }

    static let oppositeActions: [String: String] = {
        let pairs = [
            ("activate", "deactivate"), ("activated", "deactivated"), ("activating", "deactivating"),
            ("accept", "decline"), ("accepted", "declined"), ("accepting", "declining"), ("accepts", "declines"),
            ("receive", "send"), ("received", "sent"), ("receiving", "sending"), ("incoming", "outgoing"),
            ("deposit", "withdrawal"), ("deposited", "withdrew"), ("freeze", "unfreeze"), ("frozen", "unfrozen"),
            ("block", "unblock"), ("blocked", "unblocked"), ("lock", "unlock"), ("locked", "unlocked"),
            ("add", "remove"), ("added", "removed"), ("increase", "decrease"), ("more", "less"), ("before", "after"),
            ("open", "close"), ("opened", "closed"), ("buy", "sell"), ("bought", "sold"), ("enable", "disable"),
            ("link", "unlink"), ("linked", "unlinked"), ("approved", "rejected"), ("charged", "refunded"),
            ("higher", "lower"), ("maximum", "minimum"),
        ]
        var table: [String: String] = [:]
        for (a, b) in pairs {
            table[a] = b
            if table[b] == nil { table[b] = a }
        }
        return table
    }()

    // MARK: - Rewordings

    /// Expands contractions ("don't" → "do not"), or contracts when there are none ("do not" → "don't").
    mutating func toggleContractions() -> Bool {
        var changed = false
        for index in wordIndices {
            if let expanded = Self.contractions[pieces[index].lowercased().replacingOccurrences(of: "\u{2019}", with: "'")] {
                pieces[index] = Self.matchCase(expanded, to: pieces[index])
                changed = true
            }
        }
        if changed { return true }
        let words = wordIndices
        for (first, second) in zip(words, words.dropFirst()) where pieces[second].lowercased() == "not" {
            if let contracted = Self.positiveToNegated[pieces[first].lowercased()], !contracted.contains(" ") {
                pieces[first] = Self.matchCase(contracted, to: pieces[first])
                pieces[second] = ""
                pieces[first + 1] = ""
                return true
            }
        }
        return false
    }

    static let contractions: [String: String] = [
        "don't": "do not", "doesn't": "does not", "didn't": "did not", "isn't": "is not", "aren't": "are not",
        "wasn't": "was not", "weren't": "were not", "haven't": "have not", "hasn't": "has not", "can't": "cannot",
        "won't": "will not", "couldn't": "could not", "wouldn't": "would not", "i'm": "I am", "it's": "it is",
        "i've": "I have", "what's": "what is",
    ]

    /// Spells out a number, or writes a spelled one in digits: "2 weeks" ↔ "two weeks".
    mutating func respellNumber() -> Bool {
        for index in pieces.indices where isNumber(index) {
            if let value = Int(pieces[index]), value >= 1, value <= 12 {
                pieces[index] = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve"][value - 1]
                return true
            }
        }
        for index in wordIndices {
            if let position = Self.spelledNumbers.firstIndex(of: pieces[index].lowercased()), position < 10 {
                pieces[index] = String(position + 1)
                return true
            }
        }
        return false
    }

    mutating func lowercaseAll() { pieces = pieces.map { $0.lowercased() } }

    /// Replaces one word or phrase by a synonym.
    mutating func useSynonym(using generator: inout SplitMix64) -> Bool {
        let text = self.text
        let found = Self.synonyms.filter { text.lowercased().contains($0.0) }
        guard !found.isEmpty else { return false }
        let (phrase, synonym) = found[Int(generator.next() % UInt64(found.count))]
        // Word boundaries: the phrase as whole words only.
        let words = wordIndices
        let parts = phrase.split(separator: " ").map(String.init)
        for position in words.indices where position + parts.count <= words.count {
            let span = words[position..<position + parts.count]
            if zip(parts, span).allSatisfy({ $0 == pieces[$1].lowercased() }) {
                pieces.replaceSubrange(span.first!...span.last!, with: [Self.matchCase(synonym, to: pieces[span.first!])])
                return true
            }
        }
        return false
    }

    static let synonyms: [(String, String)] = [
        ("money", "funds"), ("funds", "money"), ("want to", "would like to"), ("how do i", "how can i"),
        ("how can i", "how do i"), ("purchase", "buy"), ("help", "assist"), ("app", "application"),
        ("get", "obtain"), ("quickly", "fast"), ("fee", "charge"), ("account", "bank account"),
        ("check", "verify"), ("why", "for what reason"), ("wrong", "incorrect"), ("still", "yet to"),
        ("need to", "have to"), ("a lot", "much"), ("my card", "my bank card"), ("phone", "mobile"),
    ]
}

/// Names the entity near misses swap, by kind. `found`: what is looked for in the queries;
/// `tuning` and `heldOut`: disjoint halves of what may replace it.
enum EntityLists {
    struct EntityClass {
        var found: [String]
        var tuning: [String]
        var heldOut: [String]
    }

    static let classes: [EntityClass] = [
        EntityClass(
            found: ["Apple Pay", "Google Pay", "PayPal", "Android Pay", "Samsung Pay"],
            tuning: ["Apple Pay", "Google Pay", "Venmo", "Alipay"], heldOut: ["Samsung Pay", "PayPal", "WeChat Pay", "Zelle"]),
        EntityClass(
            found: ["American Express", "Mastercard", "MasterCard", "Visa", "Maestro", "Discover"],
            tuning: ["Visa", "Mastercard", "Diners Club"], heldOut: ["American Express", "Maestro", "Discover", "UnionPay"]),
        EntityClass(
            found: ["USA", "US", "UK", "China", "Europe", "France", "Spain", "Germany", "Japan", "Canada", "Italy", "Mexico", "Russia", "India"],
            tuning: ["Germany", "Canada", "Mexico", "Brazil", "Italy", "China", "Turkey"],
            heldOut: ["Japan", "India", "Portugal", "Poland", "Australia", "Spain", "Egypt"]),
        EntityClass(
            found: ["GBP", "USD", "EUR", "pounds", "dollars", "euros", "pound", "dollar", "euro", "rubles", "ruble", "yen"],
            tuning: ["USD", "EUR", "Swiss francs", "Japanese yen"], heldOut: ["GBP", "Canadian dollars", "Mexican pesos", "Indian rupees"]),
        EntityClass(
            found: ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"],
            tuning: ["Monday", "Wednesday", "Friday", "Sunday"], heldOut: ["Tuesday", "Thursday", "Saturday"]),
    ]
}
