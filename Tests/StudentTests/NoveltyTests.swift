import Foundation
import SeededRandom
import Testing

@testable import Student

/// Seeded clusters: eight intents around random directions of a 16-dimensional space, each of two paraphrase
/// clusters; the student learns the first four, and traffic brings all eight.
enum Clusters {
    static let dimension = 16

    struct Intent {
        var centers: [[Float]]
    }

    static func intents(seed: UInt64) -> [Intent] {
        var generator = SplitMix64(seed: seed)
        func direction() -> [Float] { SyntheticTraffic.normalized((0..<dimension).map { _ in Float(generator.nextGaussian()) }) }
        return (0..<8).map { _ in
            let center = direction()
            // Two paraphrase clusters per intent, apart but nearer each other than other intents are.
            return Intent(centers: (0..<2).map { _ in SyntheticTraffic.normalized(zip(center, direction()).map { $0 + 0.5 * $1 }) })
        }
    }

    /// `count` requests of the intents `of`, the answer being the intent's name.
    static func exchanges(count: Int, of chosen: Range<Int>, seed: UInt64, intentSeed: UInt64 = 1) -> [TeacherExchange] {
        let intents = Self.intents(seed: intentSeed)
        var generator = SplitMix64(seed: seed)
        return (0..<count).map { _ in
            let intent = chosen.lowerBound + Int(generator.next() % UInt64(chosen.count))
            let center = intents[intent].centers[Int(generator.next() % 2)]
            let embedding = SyntheticTraffic.normalized(center.map { $0 + Float(0.12 * generator.nextGaussian()) })
            return TeacherExchange(embedding: embedding, answer: "intent \(intent)")
        }
    }

    static var configuration: TrainingConfiguration {
        var configuration = SyntheticTraffic.configuration
        configuration.hiddenWidths = []
        return configuration
    }
}

@Suite struct NoveltyTests {
    static let learned = Clusters.exchanges(count: 800, of: 0..<4, seed: 2)
    static let model = try! StudentTrainer.train(learned, configuration: Clusters.configuration).model
    static let withoutNovelty: StudentModel = {
        var configuration = Clusters.configuration
        configuration.noveltyExemplars = 0
        return try! StudentTrainer.train(learned, configuration: configuration).model
    }()

    /// The share of `exchanges` a student serves, and its agreement with the teacher there.
    static func served(_ model: StudentModel, _ exchanges: [TeacherExchange]) -> (share: Double, agreement: Double) {
        let metrics = model.evaluate(exchanges)
        return (metrics.coverage, metrics.acceptedAgreement)
    }

    @Test func requestsOfIntentsItNeverLearnedAreNovel() throws {
        let seen = Clusters.exchanges(count: 1000, of: 0..<4, seed: 3)
        let unseen = Clusters.exchanges(count: 1000, of: 4..<8, seed: 4)
        let model = Self.model
        let novelty = try #require(model.novelty)
        #expect(novelty.strictThreshold < novelty.threshold)

        // Confidence alone serves intents it never learned: each falls on some learned class.
        let blind = Self.served(Self.withoutNovelty, unseen)
        let gated = Self.served(model, unseen), kept = Self.served(model, seen)
        print(String(
            format: "unseen intents served: %.1f%% on confidence alone, %.1f%% with novelty; learned ones: %.1f%% at %.1f%%",
            100 * blind.share, 100 * gated.share, 100 * kept.share, 100 * kept.agreement))
        #expect(blind.share > 0.3)
        #expect(gated.share < 0.02)
        #expect(kept.share > 0.9 && kept.agreement > 0.97)
        // A stream half of new intents: what is served still agrees with the teacher, and more so with the strict
        // threshold, which costs some of the learned intents.
        #expect(Self.served(model, seen + unseen).agreement >= 0.95)
        let strict = (seen + unseen).map { model.predict($0.embedding) }
        let strictlyServed = zip(seen + unseen, strict).filter { $1.serves(shiftSuspected: true) }
        #expect(strictlyServed.allSatisfy { $0.0.answer == $0.1.answer })
        #expect(strictlyServed.count > 700)
        #expect(Self.served(Self.withoutNovelty, seen + unseen).agreement < 0.8)

        // Unseen requests score further from the exemplars than learned ones.
        let seenScores = seen.map { model.predict($0.embedding).novelty! }.sorted()
        let unseenScores = unseen.map { model.predict($0.embedding).novelty! }.sorted()
        #expect(unseenScores[unseenScores.count / 10] > seenScores[seenScores.count * 9 / 10])
    }

    /// The thresholds keep `noveltyCoverage` and `strictNoveltyCoverage` of the confident requests of learned
    /// intents, as measured on traffic neither the network nor the thresholds saw.
    @Test func theThresholdKeepsTheConfiguredShareOfLearnedRequests() throws {
        let fresh = Clusters.exchanges(count: 2000, of: 0..<4, seed: 5).map { Self.model.predict($0.embedding) }
        let confident = fresh.filter(\.isConfident)
        let novel = Double(confident.count(where: \.novel)) / Double(confident.count)
        let borderline = Double(confident.count(where: \.borderline)) / Double(confident.count)
        print(String(format: "learned intents, confident: %.1f%% novel, %.1f%% borderline", 100 * novel, 100 * borderline))
        #expect(confident.count > 1800)
        #expect(novel < 0.03)
        #expect(abs(novel + borderline - 0.15) < 0.05)
        #expect(confident.allSatisfy { !($0.novel && $0.borderline) })

        var configuration = Clusters.configuration
        configuration.noveltyCoverage = 1
        configuration.strictNoveltyCoverage = 1
        let everything = try StudentTrainer.train(Self.learned, configuration: configuration).model
        let kept = Clusters.exchanges(count: 2000, of: 0..<4, seed: 5).map { everything.predict($0.embedding) }
        #expect(kept.count(where: { $0.novel || $0.borderline }) < 20)
    }

    @Test func aStudentWithoutNoveltyServesOnItsConfidenceAlone() {
        for exchange in Clusters.exchanges(count: 200, of: 0..<8, seed: 6) {
            let prediction = Self.withoutNovelty.predict(exchange.embedding)
            #expect(prediction.novelty == nil && !prediction.novel && !prediction.borderline)
            #expect(prediction.serves(shiftSuspected: true) == prediction.isConfident)
        }
        #expect(Self.withoutNovelty.novelty == nil)
    }

    @Test func aScoreIsTheCosineDistanceToTheNearestExemplarOfTheClass() {
        var generator = SplitMix64(seed: 7)
        let embeddings = (0..<300).map { _ in (0..<20).map { _ in Float(generator.nextGaussian()) } }
        // Class 0: 200 members, of which 50 are kept, evenly spread; class 1: 100, all kept; class 2: none.
        let members = [Array(0..<200), Array(200..<300), []]
        let exemplars = Exemplars(embeddings: embeddings, members: members, limit: 100, dimension: 20)
        let few = Exemplars(embeddings: embeddings, members: members, limit: 50, dimension: 20)
        #expect(exemplars.classStarts == [0, 100, 200, 200] && few.classStarts == [0, 50, 100, 100])
        func cosine(_ a: [Float], _ b: [Float]) -> Float {
            zip(a, b).reduce(0) { $0 + $1.0 * $1.1 } / (a.reduce(0) { $0 + $1 * $1 } * b.reduce(0) { $0 + $1 * $1 }).squareRoot()
        }
        for _ in 0..<50 {
            let query = (0..<20).map { _ in Float(generator.nextGaussian()) }
            let expected = 1 - (200..<300).map { cosine(query, embeddings[$0]) }.max()!
            #expect(abs(exemplars.distance(Exemplars.Query(query), classIndex: 1) - expected) < 0.02)
            let spread = 1 - stride(from: 0, to: 200, by: 4).map { cosine(query, embeddings[$0]) }.max()!
            #expect(abs(few.distance(Exemplars.Query(query), classIndex: 0) - spread) < 0.02)
            #expect(exemplars.distance(Exemplars.Query(query), classIndex: 2) == 2)
        }
        #expect(abs(exemplars.distance(Exemplars.Query(embeddings[250].map { 3 * $0 }), classIndex: 1)) < 0.01)
        #expect(exemplars.distance(Exemplars.Query([Float](repeating: .nan, count: 20)), classIndex: 1).isNaN)
        #expect(exemplars.distance(Exemplars.Query([Float](repeating: 0, count: 20)), classIndex: 1).isNaN)
        // Not finite: novel, never served.
        let broken = Self.model.predict([Float](repeating: .nan, count: Clusters.dimension))
        #expect(broken.novel && !broken.serves())
    }

    @Test func weightedQuantiles() {
        #expect(Calibration.weightedQuantile([3, 1, 2, 4], weights: [1, 1, 1, 1], level: 0.5) == 2)
        #expect(Calibration.weightedQuantile([3, 1, 2, 4], weights: [1, 1, 1, 1], level: 0.75) == 3)
        #expect(Calibration.weightedQuantile([3, 1, 2, 4], weights: [1, 1, 1, 1], level: 1) == 4)
        #expect(Calibration.weightedQuantile([3, 1, 2, 4], weights: [1, 1, 1, 1], level: 0) == 1)
        // A heavy answer moves the quantile to itself.
        #expect(Calibration.weightedQuantile([3, 1, 2, 4], weights: [1, 1, 1, 7], level: 0.5) == 4)
    }
}
