import Foundation
import SeededRandom
import Testing

@testable import distill_bench

@Suite struct ReplayStreamTests {
    @Test func sameSeedSameStreamOtherSeedOtherStream() {
        let a = ReplayStream(uniqueQueries: 2000, repeatRate: 0.3, seed: 7)
        let b = ReplayStream(uniqueQueries: 2000, repeatRate: 0.3, seed: 7)
        let c = ReplayStream(uniqueQueries: 2000, repeatRate: 0.3, seed: 8)
        #expect(a.order == b.order)
        #expect(a.order != c.order)
    }

    /// A pinned prefix: the stream must not change with the platform or the Swift release.
    @Test func streamIsPinned() {
        #expect(Array(ReplayStream(uniqueQueries: 10, repeatRate: 0.5, seed: 1).order.prefix(8)) == Self.pinned)
    }

    static let pinned = [4, 2, 8, 4, 4, 4, 1, 9]

    @Test func everyQueryOnceThenOnlyRepeatsOfEarlierOnes() {
        let stream = ReplayStream(uniqueQueries: 5000, repeatRate: 0.3, seed: 3)
        var seen = Set<Int>()
        var firsts: [Int] = []
        for query in stream.order where seen.insert(query).inserted { firsts.append(query) }
        #expect(firsts.sorted() == Array(0..<5000))
        #expect(firsts != Array(0..<5000), "arrivals are shuffled")
        #expect(stream.order.count == 5000 + stream.repeats)
    }

    @Test func repeatsAreTheRequestedShareOfTheStream() {
        for rate in [0.0, 0.3, 0.6] {
            let stream = ReplayStream(uniqueQueries: 13083, repeatRate: rate, seed: 1)
            let share = Double(stream.repeats) / Double(stream.order.count)
            #expect(abs(share - rate) < 0.01, "rate \(rate): share \(share)")
        }
    }

    /// Zipf-like: with s = 1 the most popular 1% of queries draw a large part of the repeats; with
    /// s = 0 (uniform) about 1%.
    @Test func repeatsFollowHeavyTailedPopularity() {
        func topPercentShare(_ exponent: Double) -> Double {
            let stream = ReplayStream(uniqueQueries: 10000, repeatRate: 0.3, seed: 5, zipfExponent: exponent)
            var counts = [Int](repeating: -1, count: 10000)
            for query in stream.order { counts[query] += 1 }
            let top = counts.sorted(by: >).prefix(100).reduce(0, +)
            return Double(top) / Double(stream.repeats)
        }
        #expect(topPercentShare(1) > 0.3)
        #expect(topPercentShare(0) < 0.1)
    }

    @Test func fenwickFindsTheIntervalHoldingATarget() {
        var tree = FenwickTree(count: 9)
        let weights = [0.5, 2, 0, 1, 3, 0.25, 1, 0, 4]
        for (i, w) in weights.enumerated() { tree.add(w, at: i) }
        #expect(tree.total == weights.reduce(0, +))
        var random = SplitMix64(seed: 11)
        for _ in 0..<1000 {
            let target = random.nextUnit() * tree.total
            var cumulative = 0.0
            let expected = weights.indices.first { cumulative += weights[$0]; return cumulative > target }!
            #expect(tree.find(target) == expected)
        }
    }
}

@Suite struct ReplayReportTests {
    static let queries = [
        ReplayQuery(text: "a", gold: "A", teacher: "A"),
        ReplayQuery(text: "b", gold: "B", teacher: "X"),  // the teacher is wrong here
        ReplayQuery(text: "c", gold: nil, teacher: "C"),
    ]

    static let outcomes = [
        ReplayOutcome(query: 0, source: .teacher, answer: "A", latencyMilliseconds: 300, tokens: 10),
        ReplayOutcome(query: 1, source: .teacher, answer: "X", latencyMilliseconds: 500, tokens: 20),
        ReplayOutcome(query: 0, source: .cache, answer: "A", similarity: 1, latencyMilliseconds: 2),
        ReplayOutcome(query: 1, source: .student, answer: "b ", confidence: 0.9, latencyMilliseconds: 4),
        ReplayOutcome(query: 2, source: .student, answer: "c", confidence: 0.97, latencyMilliseconds: 6),
        ReplayOutcome(query: 2, error: "HTTP 503"),
    ]

    @Test func wholeRunFigures() {
        let report = ReplayReport(outcomes: Self.outcomes, queries: Self.queries, window: 4, pricePer1kTokens: 2, run: [:])
        let w = report.whole
        #expect(w.requests == 6)
        #expect(report.errors == 1)
        #expect(report.failures == [.init(request: 5, error: "HTTP 503")])
        let sixth: Double = 1.0 / 6
        #expect(w.share == ReplayFigures.Shares(cache: sixth, student: 2 * sixth, teacher: 2 * sixth))
        // The student's "b " disagrees with the teacher's "X"; "c" agrees up to case.
        #expect(w.agreement == ReplayFigures.Agreement(cache: 1, student: 0.5, teacher: 1, overall: 0.8))
        // Gold-labelled answers: A, X, A, "b " → 3 of 4 right; the teacher alone: A, X, A, X (and the failed request has no gold).
        #expect(w.accuracyGold == ReplayFigures.Accuracy(overall: 0.75, teacherOnly: 0.5))
        #expect(w.latencyMilliseconds["teacher"] == ReplayFigures.Latency(p50: 300, p99: 500))
        #expect(w.latencyMilliseconds["student"] == ReplayFigures.Latency(p50: 4, p99: 6))
        #expect(w.teacherTokens == 30)
        // Baseline: a at 10 twice, b at 20 twice, c (never asked of the teacher) at the mean 15 twice = 90.
        #expect(report.cost.baselineTokens == 90)
        #expect(abs(w.costSaved - (1 - 30.0 / 90)) < 1e-12)
        #expect(abs(report.cost.saved - 0.12) < 1e-12)
        #expect(report.sources == "ttcssx")
        #expect(report.cacheSimilarity == ReplayReport.Spread(min: 1, p50: 1))
        #expect(report.studentConfidence == ReplayReport.Spread(min: 0.9, p50: 0.9))
        #expect(report.disagreements == [ReplayReport.Disagreement(source: .student, teacher: "X", served: "b ", count: 1)])
        #expect(report.lateTeacherClasses.isEmpty)
    }

    /// Each teacher answer has one reason; what the counters do not explain met no serving student.
    @Test func teacherCallsByReason() {
        let exposition = """
            # HELP distill_cache_lookups_total Cache lookups by result.
            # TYPE distill_cache_lookups_total counter
            distill_cache_lookups_total{result="explore"} 7
            distill_cache_lookups_total{result="miss"} 900
            distill_student_decisions_total{decision="answer"} 300
            distill_student_decisions_total{decision="audit"} 20
            distill_student_decisions_total{decision="unsure"} 400
            distill_student_decisions_total{decision="novel"} 33
            distill_cache_lookup_duration_seconds_bucket{result="explore",le="0.005"} 7
            """
        #expect(
            ReplayReport.teacherCallReasons(exposition: exposition, teacherAnswers: 600)
                == ["explored": 7, "unsure": 400, "novel": 33, "audit": 20, "no student": 140])
        var report = ReplayReport(outcomes: Self.outcomes, queries: Self.queries, window: 4, pricePer1kTokens: 2, run: [:])
        #expect(report.teacherCallShares == nil)
        report.teacherCalls = ["no student": 1, "unsure": 2, "novel": 0, "audit": 0, "explored": 0]
        #expect(report.teacherCallShares == "no student 16.7%, unsure 33.3%, novel 0.0%, audit 0.0%, explored 0.0%")
        #expect(report.html(title: "t").contains("no student 16.7%, unsure 33.3%"))
        #expect(ReplayReport.teacherCallReasons(exposition: "", teacherAnswers: 5) == [
            "explored": 0, "unsure": 0, "novel": 0, "audit": 0, "no student": 5,
        ])
    }

    /// Two replays started in the same second keep both reports.
    @Test func reportsOfOneSecondDoNotOverwriteEachOther() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("replay-names-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let stem = directory.appendingPathComponent("replay-x-s1-20261207-095353").path
        let first = try ReplayBenchmark.claimReportBase(stem), second = try ReplayBenchmark.claimReportBase(stem)
        #expect(first == stem)
        #expect(second == stem + "-2")
        #expect(FileManager.default.fileExists(atPath: second + ".json"))
        #expect(throws: BenchError.self) { try ReplayBenchmark.claimReportBase("/nonexistent-directory/replay") }
    }

    @Test func windowsSplitTheStream() {
        let report = ReplayReport(outcomes: Self.outcomes, queries: Self.queries, window: 4, pricePer1kTokens: 2, run: [:])
        #expect(report.windows.map { [$0.start, $0.end] } == [[0, 4], [4, 6]])
        #expect(report.windows[0].figures.share == ReplayFigures.Shares(cache: 0.25, student: 0.25, teacher: 0.5))
        #expect(report.windows[1].figures.agreement == ReplayFigures.Agreement(cache: nil, student: 1, teacher: nil, overall: 1))
        #expect(report.windows[1].figures.accuracyGold == ReplayFigures.Accuracy(overall: nil, teacherOnly: nil))
    }

    /// `distill-bench replay --json` prints exactly the keys the issue specifies, nulls included.
    @Test func jsonShape() throws {
        let report = ReplayReport(outcomes: Self.outcomes, queries: Self.queries, window: 4, pricePer1kTokens: 2, run: [:])
        let object = try #require(JSONSerialization.jsonObject(with: JSONEncoder().encode(report.windows[1].figures)) as? [String: Any])
        #expect(Set(object.keys) == ["requests", "share", "agreement", "accuracy_gold", "latency_ms", "teacher_tokens", "cost_saved"])
        let share = try #require(object["share"] as? [String: Any])
        #expect(Set(share.keys) == ["cache", "student", "teacher"])
        let agreement = try #require(object["agreement"] as? [String: Any])
        #expect(Set(agreement.keys) == ["cache", "student", "teacher", "overall"])
        #expect(agreement["cache"] is NSNull)
        let accuracy = try #require(object["accuracy_gold"] as? [String: Any])
        #expect(Set(accuracy.keys) == ["overall", "teacher_only"])
        let latency = try #require(object["latency_ms"] as? [String: [String: Double]])
        #expect(latency == ["student": ["p50": 6, "p99": 6]])
    }

    @Test func htmlIsSelfContained() {
        let report = ReplayReport(outcomes: Self.outcomes, queries: Self.queries, window: 2, pricePer1kTokens: 2, run: ["command": "x <y>"])
        let html = report.html(title: "t")
        #expect(html.contains("<svg"))
        #expect(html.contains("x &lt;y&gt;"))
        #expect(!html.contains("<script"))
        #expect(!html.contains("http://") && !html.contains("https://"))
    }
}
