import CacheVerification
import Foundation

/// What `distill-bench cache-precision` reports.
struct PrecisionReport: Codable {
    struct Stream: Codable {
        var name: String
        var queries: Int
        var rows: [PrecisionRow]
    }

    /// The verified cache with a set of signals, summed over the streams.
    struct Ablation: Codable {
        var maxWrongRate: Double
        var signals: String
        var paraphraseHits: Int
        var wrongHits: Int
        var hits: Int
        var explorations: Int

        enum CodingKeys: String, CodingKey {
            case signals, hits, explorations
            case maxWrongRate = "max_wrong_rate"
            case paraphraseHits = "paraphrase_hits"
            case wrongHits = "wrong_hits"
        }
    }

    /// Issue 17's bar for one stream and δ: the wrong-hit rate's interval reaches down to δ, and
    /// at least as many paraphrases are served as by the best static threshold that was wrong no
    /// more often.
    struct Verdict: Codable {
        var stream: String
        var maxWrongRate: Double
        var withinBound: Bool
        var paraphraseHits: Int
        /// The static threshold with the most paraphrase hits among those no more often wrong, if any.
        var bestStatic: String?
        var bestStaticParaphraseHits: Int
        var servesAtLeastAsMany: Bool

        enum CodingKeys: String, CodingKey {
            case stream
            case maxWrongRate = "max_wrong_rate"
            case withinBound = "within_bound"
            case paraphraseHits = "paraphrase_hits"
            case bestStatic = "best_static"
            case bestStaticParaphraseHits = "best_static_paraphrase_hits"
            case servesAtLeastAsMany = "serves_at_least_as_many"
        }
    }

    var split: String
    var seed: UInt64
    var deltas: [Double]
    var streams: [Stream]
    var ablation: [Ablation]?

    var verdicts: [Verdict] {
        streams.flatMap { stream in
            stream.rows.filter { $0.maxWrongRate != nil }.map { verified in
                let rate = verified.wrongHitRate ?? 0
                let best = stream.rows.filter { $0.threshold != nil && ($0.wrongHitRate ?? 0) <= rate }.max { $0.paraphraseHits < $1.paraphraseHits }
                return Verdict(
                    stream: stream.name, maxWrongRate: verified.maxWrongRate!,
                    withinBound: (verified.wrongHitInterval?.low ?? 0) <= verified.maxWrongRate!,
                    paraphraseHits: verified.paraphraseHits, bestStatic: best?.policy,
                    bestStaticParaphraseHits: best?.paraphraseHits ?? 0,
                    servesAtLeastAsMany: verified.paraphraseHits >= (best?.paraphraseHits ?? 0))
            }
        }
    }

    enum CodingKeys: String, CodingKey {
        case split, seed, streams, ablation, verdicts
        case deltas = "max_wrong_rates"
    }

    init(split: String, seed: UInt64, deltas: [Double], streams: [Stream]) {
        self.split = split
        self.seed = seed
        self.deltas = deltas
        self.streams = streams
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        split = try container.decode(String.self, forKey: .split)
        seed = try container.decode(UInt64.self, forKey: .seed)
        deltas = try container.decode([Double].self, forKey: .deltas)
        streams = try container.decode([Stream].self, forKey: .streams)
        ablation = try container.decodeIfPresent([Ablation].self, forKey: .ablation)
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(split, forKey: .split)
        try container.encode(seed, forKey: .seed)
        try container.encode(deltas, forKey: .deltas)
        try container.encode(streams, forKey: .streams)
        try container.encodeIfPresent(ablation, forKey: .ablation)
        try container.encode(verdicts, forKey: .verdicts)
    }

    static func describe(_ signals: Signals) -> String {
        if signals == .standard { return "standard" }
        if signals == .all { return "standard + content distance" }
        if signals.isEmpty { return "similarity only" }
        let missing = Signals.ordered.filter { Signals.standard.contains($0) && !signals.contains($0) }
        let names: [Signals: String] = [
            .negation: "negation", .numbers: "numbers", .names: "names", .oppositeAction: "opposite action",
            .contentDistance: "content distance", .runnerUp: "runner-up",
        ]
        return "standard but " + missing.map { names[$0]! }.joined(separator: ", ")
    }

    func text() -> String {
        var lines = ["split \(split), seed \(seed)"]
        for stream in streams {
            let first = stream.rows[0]
            lines.append("")
            lines.append("stream \(stream.name): \(stream.queries) queries, \(first.nearMisses) near misses")
            lines.append("policy              hits  paraphrases served   wrong  wrong-hit rate [95%]     near misses served  teacher calls  explored")
            for row in stream.rows {
                let interval = row.wrongHitInterval.map { String(format: "[%.2f, %.2f]", 100 * $0.low, 100 * $0.high) } ?? ""
                let rate = row.wrongHitRate.map { String(format: "%6.2f%%", 100 * $0) } ?? "     - "
                lines.append(row.policy.padding(toLength: 18, withPad: " ", startingAt: 0) + String(
                    format: "%6d  %5d/%-5d %6.1f%%  %5d  %@ %@  %5d/%-5d  %13d  %@", row.hits, row.paraphraseHits, row.paraphrases, 100 * row.paraphraseHitRate,
                    row.wrongHits, rate as NSString, interval.padding(toLength: 16, withPad: " ", startingAt: 0) as NSString,
                    row.nearMissHits, row.nearMisses, row.teacherCalls,
                    (row.maxWrongRate == nil ? "" : "\(row.explorations) + \(row.audits) audits") as NSString))
            }
        }
        lines.append("")
        lines.append("issue 17: wrong-hit rate within δ (95% interval), and at least the paraphrases of the best static threshold no more often wrong")
        for verdict in verdicts {
            lines.append(verdict.stream.padding(toLength: 9, withPad: " ", startingAt: 0) + String(
                format: " δ=%4.1f%%  within δ: %@  served %5d vs %5d (%@): %@", 100 * verdict.maxWrongRate, (verdict.withinBound ? "yes" : "NO ") as NSString, verdict.paraphraseHits,
                verdict.bestStaticParaphraseHits, (verdict.bestStatic ?? "none") as NSString,
                (verdict.servesAtLeastAsMany ? "yes" : "NO") as NSString))
        }
        if let ablation {
            lines.append("")
            lines.append("signals, summed over the streams        δ     paraphrases served  wrong/hits   explored")
            for row in ablation {
                lines.append(row.signals.padding(toLength: 38, withPad: " ", startingAt: 0) + String(
                    format: " %4.1f%%  %18d  %5d/%-5d  %8d", 100 * row.maxWrongRate, row.paraphraseHits,
                    row.wrongHits, row.hits, row.explorations))
            }
        }
        return lines.joined(separator: "\n")
    }
}
