import CacheVerification
import Foundation
import SeededRandom
import VectorIndex

/// How the simulated cache decides to serve its nearest entry.
enum PrecisionPolicy {
    /// Serve when at least this similar: `cache.similarity_threshold`.
    case threshold(Double)
    /// Serve what `CacheVerifier` allows, and learn from its explorations.
    case verified(CacheVerifier.Configuration)

    var name: String {
        switch self {
        case .threshold(let threshold): String(format: "static %.3f", threshold)
        case .verified(let configuration): String(format: "verified δ=%g%%", configuration.maxWrongRate * 100)
        }
    }
}

/// One policy's run over one stream.
struct PrecisionRow: Codable, Equatable {
    var policy: String
    var threshold: Double?
    var maxWrongRate: Double?
    var lookups = 0
    var hits = 0
    var wrongHits = 0
    /// Lookups whose answer some cached entry held: the hits a perfect cache would serve.
    var paraphrases = 0
    /// Of those, served (right).
    var paraphraseHits = 0
    var nearMisses = 0
    var nearMissHits = 0
    var teacherCalls = 0
    /// Teacher calls the verified cache made because it could not yet tell…
    var explorations = 0
    /// …and to check candidates it could have served.
    var audits = 0
    /// What the verifier's model expects of its hits, and its bound.
    var expectedWrongHitRate: Double?
    var boundWrongHitRate: Double?

    var wrongHitRate: Double? { hits == 0 ? nil : Double(wrongHits) / Double(hits) }
    var paraphraseHitRate: Double { paraphrases == 0 ? 0 : Double(paraphraseHits) / Double(paraphrases) }
    /// Wilson's 95% interval of the wrong-hit rate.
    var wrongHitInterval: (low: Double, high: Double)? { hits == 0 ? nil : Wilson.interval(successes: wrongHits, trials: hits) }

    enum CodingKeys: String, CodingKey {
        case policy, threshold, lookups, hits, paraphrases, audits, explorations
        case maxWrongRate = "max_wrong_rate"
        case wrongHits = "wrong_hits"
        case paraphraseHits = "paraphrase_hits"
        case nearMisses = "near_misses"
        case nearMissHits = "near_miss_hits"
        case teacherCalls = "teacher_calls"
        case expectedWrongHitRate = "expected_wrong_hit_rate"
        case boundWrongHitRate = "bound_wrong_hit_rate"
    }
}

enum Wilson {
    static func interval(successes: Int, trials: Int, z: Double = 1.959964) -> (low: Double, high: Double) {
        let n = Double(trials)
        let p = Double(successes) / n
        let center = (p + z * z / (2 * n)) / (1 + z * z / n)
        let half = z / (1 + z * z / n) * (p * (1 - p) / n + z * z / (4 * n * n)).squareRoot()
        return (max(0, center - half), min(1, center + half))
    }
}

/// A cache of one scope replaying a stream: every query is looked up; what is not served is
/// answered by the teacher (the stream's answer) and cached, as distilld does.
struct PrecisionSimulation {
    let queries: [PrecisionStreams.Query]
    /// Unit vectors of the queries, in order.
    let vectors: [[Float]]
    let signatures: [TextSignature]
    let equivalence = AnswerEquivalence()

    /// What a lookup found: the nearest entry and the evidence about it.
    struct Observation {
        var candidate: Candidate
        var wrong: Bool
    }

    func run(_ policy: PrecisionPolicy, seed: UInt64) -> PrecisionRow {
        var row = PrecisionRow(policy: policy.name)
        var verifier: CacheVerifier?
        var scope: ScopeBelief?
        switch policy {
        case .threshold(let threshold): row.threshold = threshold
        case .verified(let configuration):
            row.maxWrongRate = configuration.maxWrongRate
            verifier = CacheVerifier(configuration)
            scope = verifier!.newScope()
        }
        var generator = SplitMix64(seed: seed)
        replay(newEntry: verifier?.newEntry() ?? EntryBelief(offsetVariance: 0)) { query, nearest, candidate, answerHeld in
            let served: Bool
            if let verifier, var belief = scope {
                let entry = nearest?.belief ?? verifier.newEntry()
                let verdict = verifier.decide(candidate, scope: &belief, entry: entry, draw: generator.nextUnit())
                served = verdict.decision == .serve
                if verdict.teaches, let nearest {
                    nearest.belief = verifier.learn(verdict, wrong: !answerHeld(nearest.answer), scope: &belief, entry: entry)
                }
                scope = belief
            } else {
                guard case .threshold(let threshold) = policy else { preconditionFailure() }
                served = (candidate.map { Double($0.similarity) } ?? -1) >= threshold
            }
            return served
        } record: { query, served, right, held in
            row.lookups += 1
            if held { row.paraphrases += 1 }
            if query.role == .nearMiss { row.nearMisses += 1 }
            if served {
                row.hits += 1
                if right { row.paraphraseHits += 1 } else { row.wrongHits += 1 }
                if query.role == .nearMiss { row.nearMissHits += 1 }
            } else {
                row.teacherCalls += 1
            }
        }
        if let scope {
            row.explorations = scope.explorations
            row.audits = scope.audits
            row.expectedWrongHitRate = scope.wrongHitRate?.estimate
            row.boundWrongHitRate = scope.wrongHitRate?.upperBound
        }
        return row
    }

    /// Every lookup's candidate and whether serving it would have been wrong, with nothing served:
    /// what the global prior is fitted on.
    func observations(minimumSimilarity: Float) -> [Observation] {
        var observations: [Observation] = []
        replay(newEntry: EntryBelief(offsetVariance: 0)) { _, nearest, candidate, answerHeld in
            if let candidate, let nearest, candidate.similarity >= minimumSimilarity {
                observations.append(Observation(candidate: candidate, wrong: !answerHeld(nearest.answer)))
            }
            return false
        } record: { _, _, _, _ in }
        return observations
    }

    final class Entry {
        let query: Int
        let answer: String
        var belief: EntryBelief
        init(query: Int, answer: String, belief: EntryBelief) {
            self.query = query
            self.answer = answer
            self.belief = belief
        }
    }

    /// The cache's loop, new entries starting from `newEntry`. `decide(query, nearest entry, candidate, is-this-answer-the-query's)` says
    /// whether the nearest entry is served; `record(query, served, right, answer-was-held)` counts.
    private func replay(
        newEntry: EntryBelief,
        decide: (PrecisionStreams.Query, Entry?, Candidate?, (String) -> Bool) -> Bool,
        record: (PrecisionStreams.Query, Bool, Bool, Bool) -> Void
    ) {
        let index = ScopeIndex(configuration: IndexConfiguration(model: "precision", dimension: vectors[0].count, promotionThreshold: Int.max))
        var entries: [Entry] = []
        var heldAnswers: [String: Int] = [:]
        for (position, query) in queries.enumerated() {
            let neighbours = index.search(vectors[position], k: 4)
            let nearest = neighbours.first.map { entries[Int($0.id)] }
            let candidate = neighbours.first.map { first in
                Candidate(
                    similarity: first.similarity,
                    runnerUpSimilarity: CacheVerifier.runnerUp(neighbours.map { ($0.similarity, entries[Int($0.id)].answer) }, equivalence: equivalence),
                    query: signatures[position], cached: signatures[entries[Int(first.id)].query])
            }
            let answerOfQuery = { (answer: String) in equivalence.areEquivalent(answer, query.answer) }
            let held = heldAnswers[AnswerEquivalence.normalized(query.answer), default: 0] > 0
            let served = nearest != nil && decide(query, nearest, candidate, answerOfQuery)
            record(query, served, served && answerOfQuery(nearest!.answer), held)
            if !served {
                index.insert(id: Int64(entries.count), vector: vectors[position])
                entries.append(Entry(query: position, answer: query.answer, belief: newEntry))
                heldAnswers[AnswerEquivalence.normalized(query.answer), default: 0] += 1
            }
        }
    }
}
