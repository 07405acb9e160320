import Foundation
import SeededRandom
import TeacherSimulator

/// The query streams of the cache-precision benchmark, built deterministically from Banking77.
///
/// The 77 intents are split in two by the seed. The tuning split (the training queries of half the
/// intents) is what the global prior and the defaults were fitted on; the held-out split (the test
/// queries of the other half, and the other half of the names entity swaps draw from) is only ever
/// reported.
enum PrecisionStreams {
    enum Split: String, CaseIterable, Codable {
        case tuning
        case heldOut = "held-out"
    }

    struct Query: Equatable {
        enum Role: String, Codable {
            /// A Banking77 query as written.
            case original
            /// Another query of the same intent: the same answer.
            case intentParaphrase
            /// The original reworded without changing its meaning: the same answer.
            case rewording
            /// The original changed in a few words so that the answer changes.
            case nearMiss
        }

        var text: String
        /// What the teacher answers: the intent, or for a near miss an answer of its own.
        var answer: String
        var role: Role
    }

    struct Stream {
        var name: String
        var queries: [Query]
    }

    struct LabelledText {
        var text: String
        var intent: String
    }

    /// The queries of `split`: Banking77's training queries of the tuning intents, or its test
    /// queries of the held-out ones; each text once.
    static func load(split: Split, dataDirectory: String, seed: UInt64) throws -> [LabelledText] {
        func read(_ file: String) throws -> [LabelledText] {
            let rows = try CSV.parse(String(contentsOfFile: "\(dataDirectory)/\(file)", encoding: .utf8))
            guard let header = rows.first, let text = header.firstIndex(of: "text"), let category = header.firstIndex(of: "category") else {
                throw PrecisionDataError("\(dataDirectory)/\(file) needs text and category columns")
            }
            return rows.dropFirst().filter { $0.count == header.count }.map { LabelledText(text: $0[text], intent: $0[category]) }
        }
        let train = try read("train.csv")
        var intents = Array(Set(train.map(\.intent))).sorted()
        var generator = SplitMix64(seed: seed)
        intents.shuffle(using: &generator)
        let tuningIntents = Set(intents.prefix(intents.count / 2))
        let texts = split == .tuning ? train.filter { tuningIntents.contains($0.intent) } : try read("test.csv").filter { !tuningIntents.contains($0.intent) }
        var seen: Set<String> = []
        return texts.filter { seen.insert($0.text.lowercased()).inserted }
    }

    /// The streams of a split: every query in a seeded order (`intents`); one stream per kind of near
    /// miss; and all the near-miss episodes in one scope (`mixed`).
    ///
    /// An episode starts with an original query (`seedsPerKind` of them at most, among those the
    /// kind can rewrite); later, interleaved with the other episodes, come a rewording of it, two
    /// other queries of its intent, and its near miss.
    static func build(texts: [LabelledText], split: Split, seed: UInt64, seedsPerKind: Int) -> [Stream] {
        var generator = SplitMix64(seed: seed ^ 0x5EED)
        var intentsStream = texts.map { Query(text: $0.text, answer: $0.intent, role: .original) }
        intentsStream.shuffle(using: &generator)
        var streams = [Stream(name: "intents", queries: intentsStream)]
        var allEpisodes: [[Query]] = []
        // No text in two episodes: the mixed stream holds them all.
        var used: Set<String> = []
        for kind in PrecisionRewrites.Kind.allCases {
            let episodes = episodes(of: kind, texts: texts, split: split, count: seedsPerKind, used: &used, using: &generator)
            allEpisodes += episodes
            streams.append(Stream(name: kind.rawValue, queries: interleave(episodes, using: &generator)))
        }
        streams.append(Stream(name: "mixed", queries: interleave(allEpisodes, using: &generator)))
        return streams
    }

    private static func episodes(
        of kind: PrecisionRewrites.Kind, texts: [LabelledText], split: Split, count: Int, used: inout Set<String>,
        using generator: inout SplitMix64
    ) -> [[Query]] {
        let half: PrecisionRewrites.Half = split == .tuning ? .tuning : .heldOut
        var byIntent: [String: [String]] = [:]
        for text in texts { byIntent[text.intent, default: []].append(text.text) }
        var order = Array(texts.indices)
        order.shuffle(using: &generator)
        var episodes: [[Query]] = []
        for index in order where episodes.count < count {
            let original = texts[index]
            guard !used.contains(original.text),
                let nearMiss = PrecisionRewrites.nearMiss(kind, of: original.text, half: half, using: &generator),
                nearMiss.lowercased() != original.text.lowercased()
            else { continue }
            let others = byIntent[original.intent, default: []].filter { $0 != original.text && !used.contains($0) }
            guard others.count >= 2 else { continue }
            var picked = others
            picked.shuffle(using: &generator)
            let rewording = PrecisionRewrites.rewording(of: original.text, for: kind, using: &generator)
            used.formUnion([original.text] + picked.prefix(2))
            episodes.append(
                [Query(text: original.text, answer: original.intent, role: .original)]
                    + [Query(text: rewording, answer: original.intent, role: .rewording)]
                    + picked.prefix(2).map { Query(text: $0, answer: original.intent, role: .intentParaphrase) }
                    + [Query(text: nearMiss, answer: "\(original.intent), but \(kind.rawValue) \(episodes.count)", role: .nearMiss)])
        }
        return episodes
    }

    /// The episodes' queries merged in a seeded order in which each episode's first query comes before the rest of it.
    private static func interleave(_ episodes: [[Query]], using generator: inout SplitMix64) -> [Query] {
        var timed: [(time: Double, query: Query)] = []
        for episode in episodes {
            let start = generator.nextUnit()
            timed.append((start, episode[0]))
            for query in episode.dropFirst() { timed.append((start + (1 - start) * generator.nextUnit(), query)) }
        }
        return timed.sorted { $0.time < $1.time }.map(\.query)
    }
}

struct PrecisionDataError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
