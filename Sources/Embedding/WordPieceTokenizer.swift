import Foundation

/// The uncased BERT WordPiece tokenizer, exactly as HuggingFace `tokenizers` runs it for all-MiniLM-L6-v2
/// (that is what sentence-transformers uses): `BertNormalizer` (clean text, isolate CJK, strip accents,
/// lower-case), `BertPreTokenizer` (split on whitespace and punctuation), `WordPiece`, then `[CLS] … [SEP]`
/// truncated to `maxLength`. Special tokens written in the text (`[SEP]`, …) are matched verbatim first.
///
/// Two details differ from the Python `BertTokenizer` and follow `tokenizers`: unassigned code points are
/// kept (not dropped as control characters), and lower-casing is per character (no final-sigma rule).
/// Character classes come from the Swift standard library's Unicode tables; `tokenizers` uses older ones,
/// so code points assigned in recent Unicode versions may be classified differently.
public struct WordPieceTokenizer: Sendable {
    /// Tokens per text including `[CLS]` and `[SEP]`; sentence-transformers' window for this model is 256.
    public let maxLength: Int
    public let vocabularySize: Int
    public let classifierID: Int32
    public let separatorID: Int32
    public let unknownID: Int32
    private let vocabulary: VocabularyTable
    private let specialTokens: [SpecialToken]

    /// Longer words become a single `[UNK]` (WordPiece's `max_input_chars_per_word`).
    static let maxWordLength = 100

    private struct SpecialToken: Sendable {
        let utf8: [UInt8]
        let id: Int32
    }

    /// Loads `vocab.txt`: one token per line, the line number is the id.
    public init(vocabularyFile: URL, maxLength: Int = 256) throws(ModelLoadError) {
        let path = vocabularyFile.path
        guard FileManager.default.fileExists(atPath: path) else { throw .fileNotFound(path: path) }
        let contents: String
        do {
            contents = try String(contentsOf: vocabularyFile, encoding: .utf8)
        } catch {
            throw .unreadable(path: path, reason: "\(error)")
        }
        // Lines end in "\n" or "\r\n" (one Character in Swift); like `tokenizers`, trailing whitespace is not
        // part of a token.
        var lines = contents.split(omittingEmptySubsequences: false) { $0 == "\n" || $0 == "\r\n" }
        if lines.last == "" { lines.removeLast() }
        let tokens = lines.map { line in String(line.reversed().drop(while: \.isWhitespace).reversed()) }
        try self.init(tokens: tokens, maxLength: maxLength, source: path)
    }

    /// A tokenizer over an in-memory vocabulary (the token at index `i` has id `i`).
    public init(tokens: [String], maxLength: Int = 256, source: String = "<memory>") throws(ModelLoadError) {
        guard maxLength >= 2 else { throw .invalidVocabulary(path: source, reason: "maxLength \(maxLength) < 2") }
        guard tokens.count <= Int(Int32.max) else { throw .invalidVocabulary(path: source, reason: "too many tokens") }
        let table = VocabularyTable(tokens: tokens)
        func id(_ token: String) throws(ModelLoadError) -> Int32 {
            guard let id = table.id(of: Array(token.utf8)) else {
                throw .invalidVocabulary(path: source, reason: "missing special token \(token)")
            }
            return id
        }
        self.maxLength = maxLength
        self.vocabularySize = tokens.count
        self.vocabulary = table
        self.classifierID = try id("[CLS]")
        self.separatorID = try id("[SEP]")
        self.unknownID = try id("[UNK]")
        var specials: [SpecialToken] = []
        for token in ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] {
            if let id = table.id(of: Array(token.utf8)) { specials.append(SpecialToken(utf8: Array(token.utf8), id: id)) }
        }
        self.specialTokens = specials
    }

    /// Token ids of `text`: `[CLS]`, at most `maxLength - 2` word pieces, `[SEP]`.
    public func encode(_ text: String) -> [Int32] {
        encode(text, capacity: maxLength)
    }

    /// Whether `encode` keeps every word piece of `text`: what lies beyond the window is not embedded.
    public func seesWhole(_ text: String) -> Bool {
        encode(text, capacity: maxLength + 1).count <= maxLength
    }

    private func encode(_ text: String, capacity: Int) -> [Int32] {
        var state = EncodingState(capacity: capacity)
        state.ids.append(classifierID)
        var segmentStart = text.utf8.startIndex
        var index = segmentStart
        let utf8 = text.utf8
        while index < utf8.endIndex && !state.isFull {
            guard utf8[index] == UInt8(ascii: "["), let special = specialToken(at: index, in: utf8) else {
                utf8.formIndex(after: &index)
                continue
            }
            appendSegment(text[segmentStart..<index], to: &state)
            if !state.isFull { state.ids.append(special.id) }
            index = utf8.index(index, offsetBy: special.utf8.count)
            segmentStart = index
        }
        if !state.isFull { appendSegment(text[segmentStart...], to: &state) }
        state.ids.append(separatorID)
        return state.ids
    }

    private func specialToken(at index: String.Index, in utf8: String.UTF8View) -> SpecialToken? {
        specialTokens.first { token in
            utf8[index...].starts(with: token.utf8)
        }
    }

    /// Reusable buffers for one `encode` call.
    private struct EncodingState {
        var ids: [Int32]
        let limit: Int
        /// The current word's UTF-8 bytes and the byte offset where each of its scalars starts.
        var word: [UInt8] = []
        var scalarStarts: [Int] = []
        var pieces: [Int32] = []

        init(capacity: Int) {
            ids = []
            ids.reserveCapacity(capacity)
            limit = capacity - 1
        }

        /// No room left before `[SEP]`.
        var isFull: Bool { ids.count >= limit }

        mutating func append(_ scalar: Unicode.Scalar) {
            scalarStarts.append(word.count)
            word.append(contentsOf: UTF8.encode(scalar)!)
        }
    }

    private func appendSegment(_ segment: Substring, to state: inout EncodingState) {
        if segment.utf8.allSatisfy({ $0 < 0x80 }) {
            appendScalars(segment.unicodeScalars, to: &state)
        } else {
            // Canonical decomposition first, so accents become separate marks to drop.
            appendScalars(String(segment).decomposedStringWithCanonicalMapping.unicodeScalars, to: &state)
        }
        endWord(&state)
    }

    private func appendScalars<S: Sequence<Unicode.Scalar>>(_ scalars: S, to state: inout EncodingState) {
        for scalar in scalars {
            if state.isFull { return }
            let value = scalar.value
            if value < 0x80 {
                switch value {
                case 0x09, 0x0A, 0x0D, 0x20: endWord(&state)
                case 0..<0x20, 0x7F: continue  // control characters are dropped
                case 33...47, 58...64, 91...96, 123...126: appendIsolated(scalar, to: &state)
                case 0x41...0x5A: state.append(Unicode.Scalar(value + 0x20)!)
                default: state.append(scalar)
                }
                continue
            }
            if value == 0xFFFD { continue }
            let properties = scalar.properties
            switch properties.generalCategory {
            case .control, .format, .privateUse, .surrogate, .nonspacingMark: continue
            default: break
            }
            if properties.isWhitespace {
                endWord(&state)
            } else if Self.isCJK(value) {
                appendIsolated(scalar, to: &state)
            } else {
                for lower in properties.lowercaseMapping.unicodeScalars {
                    if Self.isPunctuation(lower) { appendIsolated(lower, to: &state) } else { state.append(lower) }
                }
            }
        }
    }

    private func appendIsolated(_ scalar: Unicode.Scalar, to state: inout EncodingState) {
        endWord(&state)
        state.append(scalar)
        endWord(&state)
    }

    /// Ends the current word: its word pieces go to `ids`, as many as fit.
    private func endWord(_ state: inout EncodingState) {
        guard !state.word.isEmpty else { return }
        state.scalarStarts.append(state.word.count)
        state.word.withUnsafeBufferPointer { word in
            wordPieces(of: word, scalarStarts: state.scalarStarts, into: &state.pieces)
        }
        state.ids.append(contentsOf: state.pieces.prefix(state.limit - state.ids.count))
        state.word.removeAll(keepingCapacity: true)
        state.scalarStarts.removeAll(keepingCapacity: true)
    }

    /// WordPiece: greedy longest match from the left, `##` for continuations, and a single `[UNK]` for the
    /// whole word if any part has no match. `scalarStarts` ends with the word's byte count.
    private func wordPieces(of word: UnsafeBufferPointer<UInt8>, scalarStarts: [Int], into pieces: inout [Int32]) {
        pieces.removeAll(keepingCapacity: true)
        let scalarCount = scalarStarts.count - 1
        guard scalarCount <= Self.maxWordLength else {
            pieces.append(unknownID)
            return
        }
        var start = 0
        while start < scalarCount {
            var end = scalarCount
            var match: Int32?
            while end > start {
                let candidate = UnsafeBufferPointer(rebasing: word[scalarStarts[start]..<scalarStarts[end]])
                if let id = vocabulary.id(of: candidate, continuation: start > 0) {
                    match = id
                    break
                }
                end -= 1
            }
            guard let id = match else {
                pieces.removeAll(keepingCapacity: true)
                pieces.append(unknownID)
                return
            }
            pieces.append(id)
            start = end
        }
    }

    static func isPunctuation(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 33...47, 58...64, 91...96, 123...126: return true
        case 0..<0x80: return false
        default:
            switch scalar.properties.generalCategory {
            case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation,
                .initialPunctuation, .finalPunctuation, .otherPunctuation:
                return true
            default:
                return false
            }
        }
    }

    /// CJK ideographs get a word each. These are the ranges of `tokenizers` (whose Extension E range
    /// starts at U+2B920, not U+2B820 as in the Python tokenizer).
    static func isCJK(_ value: UInt32) -> Bool {
        switch value {
        case 0x4E00...0x9FFF, 0x3400...0x4DBF, 0x20000...0x2A6DF, 0x2A700...0x2B73F, 0x2B740...0x2B81F,
            0x2B920...0x2CEAF, 0xF900...0xFAFF, 0x2F800...0x2FA1F:
            return true
        default:
            return false
        }
    }
}

/// Token → id, keyed by exact UTF-8 bytes (no Unicode equivalence, unlike `String`), allocation-free to
/// query. Continuation pieces (`##abc`) are stored without their prefix, flagged, so a lookup never has
/// to build a prefixed string.
struct VocabularyTable: Sendable {
    private var keys: [UInt8] = []
    private var slots: [Slot]
    private let mask: Int
    /// No key is longer, so longer candidates need no lookup.
    private(set) var maxKeyLength = 0

    private struct Slot {
        var start: Int32 = 0
        var length: Int32 = 0
        var id: Int32 = -1
        var isContinuation = false
    }

    init(tokens: [String]) {
        var capacity = 16
        while capacity < tokens.count * 2 { capacity *= 2 }
        slots = Array(repeating: Slot(), count: capacity)
        mask = capacity - 1
        for (id, token) in tokens.enumerated() {
            var utf8 = Array(token.utf8)
            let isContinuation = utf8.count > 2 && utf8[0] == UInt8(ascii: "#") && utf8[1] == UInt8(ascii: "#")
            if isContinuation { utf8.removeFirst(2) }
            insert(utf8, isContinuation: isContinuation, id: Int32(id))
        }
    }

    func id(of token: [UInt8]) -> Int32? {
        token.withUnsafeBufferPointer { id(of: $0, continuation: false) }
    }

    func id(of key: UnsafeBufferPointer<UInt8>, continuation: Bool) -> Int32? {
        guard key.count <= maxKeyLength else { return nil }
        var index = Self.hash(key, continuation) & mask
        return keys.withUnsafeBufferPointer { keys in
            slots.withUnsafeBufferPointer { slots in
                while slots[index].id >= 0 {
                    let slot = slots[index]
                    if slot.isContinuation == continuation && Int(slot.length) == key.count
                        && memcmp(keys.baseAddress! + Int(slot.start), key.baseAddress!, key.count) == 0
                    {
                        return slot.id
                    }
                    index = (index + 1) & mask
                }
                return nil
            }
        }
    }

    /// A later duplicate overwrites the earlier id, as a dictionary built from the file would.
    private mutating func insert(_ key: [UInt8], isContinuation: Bool, id: Int32) {
        var index = key.withUnsafeBufferPointer { Self.hash($0, isContinuation) } & mask
        while slots[index].id >= 0 {
            let slot = slots[index]
            if slot.isContinuation == isContinuation && keys[Int(slot.start)..<Int(slot.start + slot.length)].elementsEqual(key) {
                slots[index].id = id
                return
            }
            index = (index + 1) & mask
        }
        slots[index] = Slot(start: Int32(keys.count), length: Int32(key.count), id: id, isContinuation: isContinuation)
        keys.append(contentsOf: key)
        maxKeyLength = max(maxKeyLength, key.count)
    }

    /// FNV-1a; the continuation flag selects a different starting basis.
    private static func hash(_ key: UnsafeBufferPointer<UInt8>, _ continuation: Bool) -> Int {
        var hash: UInt64 = continuation ? 0x84222325_cbf29ce4 : 0xcbf29ce4_84222325
        for byte in key {
            hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3
        }
        return Int(truncatingIfNeeded: hash)
    }
}
