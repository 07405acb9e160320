import ArgumentParser
import CacheVerification
import Embedding
import Foundation
import SeededRandom

/// Static similarity thresholds against the verified cache (`CacheVerifier`), on streams of
/// paraphrases and near misses built from Banking77 (`PrecisionStreams`).
struct CachePrecisionBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cache-precision",
        abstract: "Wrong hits and paraphrase hits of static thresholds and of the verified cache.",
        discussion: """
            Each stream is one scope replayed through a simulated cache: every query is looked up,
            what is not served is answered by the teacher (the stream's answer) and cached. Reports,
            per stream and policy, the paraphrases served (of the lookups whose answer the cache
            held), the wrong-hit rate among hits with its 95% interval, and the teacher calls.
            """)

    @Option(help: "The Banking77 directory (train.csv, test.csv).") var data = "../shared/data/banking77"
    @Option(help: "The embedding model directory.") var model = "models/all-MiniLM-L6-v2"
    @Option(help: "tuning or held-out.") var split = PrecisionStreams.Split.heldOut.rawValue
    @Option(help: "Seed of the split, the streams and the audits.") var seed: UInt64 = 1
    @Option(help: "Episodes per kind of near miss, at most.") var seedsPerKind = 200
    @Option(help: "δ values of the verified cache, comma-separated.") var maxErrors = "0.01,0.02,0.05"
    @Option(help: "Static thresholds, comma-separated.") var thresholds = "0.85,0.87,0.89,0.91,0.925,0.94,0.95,0.96,0.97"
    @Option(help: "Share of servable lookups the verified cache audits.") var auditShare = 0.02
    @Option(help: "OpenBLAS threads.") var threads = 1
    @Flag(help: "Also run the verified cache without each signal in turn.") var ablate = false
    @Flag(help: "Fit the global prior on every lookup of the split's streams, and print it with the signals' statistics.") var fitPrior = false
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        guard let split = PrecisionStreams.Split(rawValue: split) else { throw ValidationError("--split is tuning or held-out") }
        let deltas = try Self.numbers(maxErrors, option: "--max-errors")
        let thresholds = try Self.numbers(thresholds, option: "--thresholds")
        let texts = try PrecisionStreams.load(split: split, dataDirectory: data, seed: seed)
        let streams = PrecisionStreams.build(texts: texts, split: split, seed: seed, seedsPerKind: seedsPerKind)

        let encoder = try BertEncoder(modelDirectory: URL(fileURLWithPath: model), threads: threads)
        let unique = Array(Set(streams.flatMap { $0.queries.map(\.text) })).sorted()
        Self.progress("embedding \(unique.count) texts with \(encoder.identity)…")
        var vectorOf: [String: [Float]] = [:]
        for start in stride(from: 0, to: unique.count, by: 64) {
            let batch = Array(unique[start..<min(start + 64, unique.count)])
            for (text, vector) in zip(batch, encoder.embed(batch)) { vectorOf[text] = vector }
        }
        let simulations = streams.map { stream in
            PrecisionSimulation(
                queries: stream.queries, vectors: stream.queries.map { vectorOf[$0.text]! },
                signatures: stream.queries.map { TextSignature($0.text) })
        }

        if fitPrior {
            // The mixed stream repeats the kinds' episodes: fitted once each.
            let observations = zip(streams, simulations).filter { $0.0.name != "mixed" }.flatMap { $0.1.observations(minimumSimilarity: 0.7) }
            print(PriorFit(observations: observations, seed: seed).report())
            return
        }

        let policies = thresholds.map(PrecisionPolicy.threshold) + deltas.map { delta in
            PrecisionPolicy.verified(CacheVerifier.Configuration(maxWrongRate: delta, auditShare: auditShare))
        }
        var report = PrecisionReport(split: split.rawValue, seed: seed, deltas: deltas, streams: [])
        for (stream, simulation) in zip(streams, simulations) {
            Self.progress("stream \(stream.name): \(stream.queries.count) queries")
            let rows = policies.map { simulation.run($0, seed: seed) }
            report.streams.append(PrecisionReport.Stream(name: stream.name, queries: stream.queries.count, rows: rows))
        }
        if ablate {
            report.ablation = deltas.flatMap { delta in
                ([Signals.standard, .all, []] + Signals.ordered.filter(Signals.standard.contains).map { Signals.standard.subtracting($0) }).map { signals in
                    var configuration = CacheVerifier.Configuration(maxWrongRate: delta, auditShare: auditShare)
                    configuration.signals = signals
                    let rows = simulations.map { $0.run(.verified(configuration), seed: seed) }
                    return PrecisionReport.Ablation(
                        maxWrongRate: delta, signals: PrecisionReport.describe(signals), paraphraseHits: rows.reduce(0) { $0 + $1.paraphraseHits },
                        wrongHits: rows.reduce(0) { $0 + $1.wrongHits }, hits: rows.reduce(0) { $0 + $1.hits },
                        explorations: rows.reduce(0) { $0 + $1.explorations })
                }
            }
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        } else {
            print(report.text())
        }
    }

    static func numbers(_ list: String, option: String) throws -> [Double] {
        let values = list.split(separator: ",").map { Double($0.trimmingCharacters(in: .whitespaces)) }
        guard !values.isEmpty, values.allSatisfy({ $0 != nil && $0! > 0 && $0! < 1 }) else {
            throw ValidationError("\(option) takes numbers between 0 and 1, comma-separated")
        }
        return values.map { $0! }
    }

    static func progress(_ message: String) { FileHandle.standardError.write(Data("\(message)\n".utf8)) }
}

/// The global prior, fitted on every lookup's candidate (nothing served, so nothing selected):
/// assumed-density filtering from a vague belief, in a seeded order.
struct PriorFit {
    let observations: [PrecisionSimulation.Observation]
    let seed: UInt64

    func report() -> String {
        var lines: [String] = []
        var order = Array(observations.indices)
        var generator = SplitMix64(seed: seed)
        order.shuffle(using: &generator)
        let signals = Signals.standard
        var model = WrongHitModel(
            mean: Array(repeating: 0, count: signals.dimension), standardDeviations: Array(repeating: 3, count: signals.dimension))
        for index in order {
            _ = model.observe(signals.features(of: observations[index].candidate), wrong: observations[index].wrong, entry: EntryBelief(offsetVariance: 0))
        }
        let names = ["intercept", "distance"] + ["negation", "numbers", "names", "opposite action", "runner-up"]
        lines.append("\(observations.count) lookups with a candidate ≥ 0.7, \(observations.filter(\.wrong).count) of them wrong")
        lines.append("weight             mean     sd")
        for (i, name) in names.enumerated() {
            let variance = model.covariance[i * (i + 1) / 2 + i]
            lines.append(name.padding(toLength: 17, withPad: " ", startingAt: 0) + String(format: "%7.3f  %6.3f", model.mean[i], variance.squareRoot()))
        }
        lines.append("")
        lines.append("signal            fires on wrong  fires on right  (candidates ≥ 0.85)")
        let close = observations.filter { $0.candidate.similarity >= 0.85 }
        let tests: [(String, (Mismatch) -> Bool)] = [
            ("negation", \.negation), ("numbers", \.numbers), ("names", \.names), ("opposite action", \.oppositeAction),
            ("content ≥ 0.5", { $0.contentDistance >= 0.5 }),
        ]
        for (name, fires) in tests {
            let wrong = close.filter(\.wrong)
            let right = close.filter { !$0.wrong }
            lines.append(name.padding(toLength: 17, withPad: " ", startingAt: 0) + String(
                format: "%5d/%-5d %5.1f%%  %5d/%-5d %5.1f%%",
                wrong.filter { fires($0.candidate.mismatch) }.count, wrong.count,
                100 * Double(wrong.filter { fires($0.candidate.mismatch) }.count) / Double(max(wrong.count, 1)),
                right.filter { fires($0.candidate.mismatch) }.count, right.count,
                100 * Double(right.filter { fires($0.candidate.mismatch) }.count) / Double(max(right.count, 1))))
        }
        lines.append("")
        lines.append("similarity    no signal: n  wrong      a signal: n  wrong")
        let edges: [Float] = [0.7, 0.8, 0.85, 0.9, 0.925, 0.95, 0.975, 1.0001]
        for (low, high) in zip(edges, edges.dropFirst()) {
            let inBin = observations.filter { $0.candidate.similarity >= low && $0.candidate.similarity < high }
            let flagged = inBin.filter { let m = $0.candidate.mismatch; return m.negation || m.numbers || m.names || m.oppositeAction }
            let clean = inBin.filter { let m = $0.candidate.mismatch; return !(m.negation || m.numbers || m.names || m.oppositeAction) }
            func rate(_ set: [PrecisionSimulation.Observation]) -> String {
                String(format: "%6d %6.2f%%", set.count, 100 * Double(set.filter(\.wrong).count) / Double(max(set.count, 1)))
            }
            lines.append(String(format: "[%.3f, %.3f)  ", low, min(high, 1)) + rate(clean) + "      " + rate(flagged))
        }
        return lines.joined(separator: "\n")
    }
}
