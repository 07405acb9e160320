import Foundation

/// The student's classes in one scope: the teacher's answers that recur.
///
/// Answers are grouped by their canonical form (`canonicalKey(_:)`), so "Yes." and "yes" are one class, served as
/// the text the teacher gave most often. The network has one output more than there are classes, `restIndex`: it
/// stands for every other answer. Examples whose answer is no class train it, so that the student learns which
/// requests it cannot answer (open-ended prompts) instead of forcing them onto the nearest class.
public struct AnswerClasses: Sendable, Hashable {
    /// The text served for each class.
    public let answers: [String]
    /// How many of the examples the classes were built from had each class's answer.
    public let supports: [Int]
    /// Canonical keys as UTF-8, sorted, with their class: prefix lookups for partial answers.
    private let sortedKeys: [(key: [UInt8], index: Int)]
    private let indexByKey: [String: Int]

    /// Classes from the teacher's answers (oldest first): each canonical answer given at least `minSupport` times,
    /// in order of first appearance. Answers that are empty once canonicalized are never a class.
    public init(answers log: some Sequence<String>, minSupport: Int) {
        precondition(minSupport >= 1, "minSupport must be at least 1")
        var keys: [String] = []
        var keyCounts: [String: Int] = [:]
        // Each distinct text once: its key, its count, and each key's texts in order of first appearance.
        var keyOfText: [String: String] = [:]
        var textCounts: [String: Int] = [:]
        var textsOfKey: [String: [String]] = [:]
        for answer in log {
            let key: String
            if let known = keyOfText[answer] {
                key = known
            } else {
                key = Self.canonicalKey(answer)
                keyOfText[answer] = key
                textsOfKey[key, default: []].append(answer)
            }
            if key.isEmpty { continue }
            if keyCounts[key] == nil { keys.append(key) }
            keyCounts[key, default: 0] += 1
            textCounts[answer, default: 0] += 1
        }
        var answers: [String] = []
        var supports: [Int] = []
        for key in keys where keyCounts[key]! >= minSupport {
            // The most frequent text, the first of equals (`max` keeps the first maximum).
            answers.append(textsOfKey[key]!.max { textCounts[$0]! < textCounts[$1]! }!)
            supports.append(keyCounts[key]!)
        }
        self.init(validAnswers: answers, supports: supports)
    }

    /// Classes as stored: the served answers, whose canonical keys must be distinct and not empty.
    init(answers: [String], supports: [Int]) throws(StudentModelDecodingError) {
        guard answers.count == supports.count, supports.allSatisfy({ $0 >= 0 }) else {
            throw .invalid("class supports do not match the classes")
        }
        let keys = answers.map(Self.canonicalKey)
        guard keys.allSatisfy({ !$0.isEmpty }), Set(keys).count == keys.count else {
            throw .invalid("class answers are empty or not distinct once canonicalized")
        }
        self.init(validAnswers: answers, supports: supports)
    }

    private init(validAnswers answers: [String], supports: [Int]) {
        self.answers = answers
        self.supports = supports
        let keys = answers.map(Self.canonicalKey)
        indexByKey = Dictionary(uniqueKeysWithValues: zip(keys, keys.indices))
        sortedKeys = keys.enumerated().map { (Array($0.element.utf8), $0.offset) }
            .sorted { $0.key.lexicographicallyPrecedes($1.key) }
    }

    /// The number of classes.
    public var count: Int { answers.count }
    /// The output that stands for answers that are no class.
    public var restIndex: Int { answers.count }
    /// The network's outputs: the classes and the rest.
    public var outputCount: Int { answers.count + 1 }

    /// The class of an answer, if it is one.
    public func index(of answer: String) -> Int? { indexByKey[Self.canonicalKey(answer)] }

    /// What makes two answers the same class: NFC, lower case, runs of white space as one space, trimmed, without
    /// quotes or backticks around it nor periods at its end ("`Yes.`" and "yes" are one answer).
    public static func canonicalKey(_ text: String) -> String {
        var characters = Substring(
            text.precomposedStringWithCanonicalMapping.lowercased()
                .split(whereSeparator: \.isWhitespace).joined(separator: " "))
        while let first = characters.first, first == characters.last, characters.count >= 2, "\"'`".contains(first) {
            characters = characters.dropFirst().dropLast()
        }
        while characters.last == "." { characters = characters.dropLast() }
        return characters.trimmingCharacters(in: .whitespaces)
    }

    /// The class an alternative of `top_logprobs` stands for: the class it names, or else the one class whose
    /// canonical answer it begins (a real LLM's first token, e.g. "billing" for "billing_issue"). A beginning
    /// shared by several classes says nothing about which one, so it stands for none.
    func index(ofAlternative text: String) -> Int? {
        let key = Self.canonicalKey(text)
        if key.isEmpty { return nil }
        if let index = indexByKey[key] { return index }
        let prefix = Array(key.utf8)
        var low = 0, high = sortedKeys.count
        while low < high {
            let middle = (low + high) / 2
            if sortedKeys[middle].key.lexicographicallyPrecedes(prefix) { low = middle + 1 } else { high = middle }
        }
        guard low < sortedKeys.count, sortedKeys[low].key.starts(with: prefix) else { return nil }
        if low + 1 < sortedKeys.count, sortedKeys[low + 1].key.starts(with: prefix) { return nil }
        return sortedKeys[low].index
    }

    /// The training target of one logged exchange.
    ///
    /// With `alternatives` — the first generated token's `top_logprobs` as logged, natural-log probabilities — the
    /// teacher's distribution over classes: each alternative's probability goes to the class it stands for
    /// (`index(ofAlternative:)`), and the matched mass is renormalized. Alternatives that match no class are
    /// dropped: an unknown token says nothing about the classes. The label stays hard when the answer is no class,
    /// when the alternatives that matched a class hold less than `minimumMatchedShare` of the listed probability
    /// (a real LLM's first token that several classes begin with), or when none of it went to the answer's own
    /// class (the alternatives then describe some other decision than the answer's). The share is of the listed
    /// mass, not of 1: a hesitant teacher's top 5 may hold less than half of its probability, all on classes.
    public func target(
        answer: String, alternatives: [(text: String, logprob: Double)] = [], minimumMatchedShare: Double = 0.5
    ) -> TrainingTarget {
        let label = index(of: answer) ?? restIndex
        guard label != restIndex, !alternatives.isEmpty else { return TrainingTarget(label: label) }
        var mass: [Int: Double] = [:]
        var listed = 0.0, matched = 0.0
        for alternative in alternatives {
            let probability = min(exp(alternative.logprob), 1)
            guard probability > 0 else { continue }
            listed += probability
            guard let index = index(ofAlternative: alternative.text) else { continue }
            mass[index, default: 0] += probability
            matched += probability
        }
        guard matched >= minimumMatchedShare * listed, matched > 0, mass[label] != nil else {
            return TrainingTarget(label: label)
        }
        let distribution = mass.sorted { $0.key < $1.key }.map {
            ClassProbability(classIndex: $0.key, probability: Float($0.value / matched))
        }
        return TrainingTarget(label: label, distribution: distribution)
    }

    public static func == (a: Self, b: Self) -> Bool { a.answers == b.answers && a.supports == b.supports }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(answers)
        hasher.combine(supports)
    }
}

/// What the student learns from one teacher exchange.
public struct TrainingTarget: Sendable, Hashable {
    /// The teacher's answer: a class, or `AnswerClasses.restIndex`.
    public var label: Int
    /// The teacher's distribution over the classes (probabilities summing to 1, ascending class), or empty when
    /// only the answer is known (a hard label).
    public var distribution: [ClassProbability]

    public init(label: Int, distribution: [ClassProbability] = []) {
        self.label = label
        self.distribution = distribution
    }
}

public struct ClassProbability: Sendable, Hashable {
    public var classIndex: Int
    public var probability: Float

    public init(classIndex: Int, probability: Float) {
        self.classIndex = classIndex
        self.probability = probability
    }
}
