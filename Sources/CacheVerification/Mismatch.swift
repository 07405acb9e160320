/// Cheap evidence that two texts ask different things although their embeddings are close:
/// what MiniLM's cosine hardly sees ("pending" / "not pending", "$50" / "$500", "on" / "off").
public struct Mismatch: Sendable, Equatable {
    /// One says "not" (or "never", "isn't", …) where the other does not: their counts of negation cues differ.
    public var negation: Bool
    /// Both state numbers, and not the same ones.
    public var numbers: Bool
    /// A name (capitalized word, currency) in one that the other does not mention, in any case: "Visa"
    /// and "visa" name the same card, "Visa" and "Mastercard" do not.
    public var names: Bool
    /// A word in one whose opposite is in the other: "on"/"off", "activate"/"deactivate", "lock"/"unlock".
    public var oppositeAction: Bool
    /// Jaccard distance between the content words: 0 for the same words, 1 for none in common.
    public var contentDistance: Double

    public init(negation: Bool = false, numbers: Bool = false, names: Bool = false, oppositeAction: Bool = false, contentDistance: Double = 0) {
        self.negation = negation
        self.numbers = numbers
        self.names = names
        self.oppositeAction = oppositeAction
        self.contentDistance = contentDistance
    }

    public init(_ a: TextSignature, _ b: TextSignature) {
        negation = a.negations != b.negations
        numbers = !a.numbers.isEmpty && !b.numbers.isEmpty && a.numbers != b.numbers
        names = !a.names.allSatisfy(b.mentions) || !b.names.allSatisfy(a.mentions)
        oppositeAction = Self.opposes(a.allWords.subtracting(b.allWords), b.allWords.subtracting(a.allWords))
        let union = a.words.union(b.words).count
        contentDistance = union == 0 ? 0 : 1 - Double(a.words.intersection(b.words).count) / Double(union)
    }

    /// Whether a word only one side has is the opposite of a word only the other side has.
    static func opposes(_ onlyA: Set<String>, _ onlyB: Set<String>) -> Bool {
        guard !onlyA.isEmpty, !onlyB.isEmpty else { return false }
        for word in onlyA {
            if let opposites = Self.opposites[word], !opposites.isDisjoint(with: onlyB) { return true }
            // Negating prefixes: "lock"/"unlock", "activate"/"deactivate", "able"/"disable".
            for prefix in ["un", "de", "dis"] where onlyB.contains(prefix + word) || word.hasPrefix(prefix) && onlyB.contains(String(word.dropFirst(prefix.count))) {
                return true
            }
        }
        return false
    }

    /// Pairs of opposite words (stemmed like `TextSignature.stem`), each listed both ways.
    static let opposites: [String: Set<String>] = {
        let pairs: [(String, String)] = [
            ("on", "off"), ("in", "out"), ("up", "down"), ("open", "close"), ("start", "stop"), ("begin", "end"),
            ("enable", "disable"), ("activate", "cancel"), ("accept", "decline"), ("accept", "reject"),
            ("approve", "decline"), ("approve", "reject"), ("allow", "block"), ("allow", "deny"), ("allow", "prevent"),
            ("add", "remove"), ("add", "delete"), ("increase", "decrease"), ("raise", "lower"), ("deposit", "withdraw"),
            ("send", "receive"), ("sent", "received"), ("buy", "sell"), ("bought", "sold"), ("incoming", "outgoing"),
            ("credit", "debit"), ("import", "export"), ("upload", "download"), ("show", "hide"), ("before", "after"),
            ("more", "less"), ("more", "fewer"), ("higher", "lower"), ("maximum", "minimum"), ("max", "min"),
            ("include", "exclude"), ("pass", "fail"), ("succeed", "fail"), ("success", "failure"), ("enter", "exit"),
            ("arrive", "leave"), ("push", "pull"), ("early", "late"), ("first", "last"), ("charge", "refund"),
            ("pay", "refund"), ("join", "leave"), ("confirm", "cancel"), ("renew", "cancel"), ("order", "cancel"),
            ("lend", "borrow"), ("save", "spend"), ("win", "lose"), ("gain", "lose"), ("found", "lost"), ("find", "lose"),
            ("connect", "disconnect"), ("mute", "unmute"), ("subscribe", "unsubscribe"), ("attach", "detach"),
            ("login", "logout"), ("yes", "no"), ("true", "false"), ("valid", "invalid"), ("correct", "wrong"),
            ("right", "wrong"), ("cheap", "expensive"), ("fast", "slow"), ("hot", "cold"), ("warm", "cool"),
            ("light", "dark"), ("brighten", "dim"), ("left", "right"), ("above", "below"), ("inside", "outside"),
            ("plus", "minus"), ("old", "new"), ("today", "tomorrow"), ("today", "yesterday"),
            ("deposit", "withdrew"),  // irregular pasts the stemmer leaves alone
        ]
        var opposites: [String: Set<String>] = [:]
        for (a, b) in pairs {
            let (stemA, stemB) = (TextSignature.stem(a), TextSignature.stem(b))
            opposites[stemA, default: []].insert(stemB)
            opposites[stemB, default: []].insert(stemA)
        }
        return opposites
    }()
}
