import DistillAPI
import Foundation

/// One query of the workload: its text, the data set's gold label (if any) and the teacher's answer.
struct ReplayQuery: Sendable, Equatable {
    var text: String
    var gold: String?
    var teacher: String
}

/// What one request of the stream got back.
struct ReplayOutcome: Sendable, Equatable {
    /// Index into the workload's queries.
    var query: Int
    /// nil when the request failed.
    var source: DistillSource?
    var answer: String = ""
    var similarity: Double?
    var confidence: Double?
    var latencyMilliseconds: Double = 0
    /// The teacher's `usage.total_tokens` for a teacher answer, else 0.
    var tokens: Int = 0
    /// Status and message of a failed request.
    var error: String?
    /// When the answer was complete, in seconds since the run started (wall clock, to compare with
    /// the daemon's timestamps).
    var completedAt = 0.0
}

/// One training run of the daemon's distiller, placed in the stream.
struct ReplayDistillRun: Encodable, Equatable {
    var id: Int
    /// scheduled, manual, or shift (due sooner: the traffic moved away from what the student learned).
    var trigger: String
    /// promoted, rejected, failed or cancelled (nil: still running when the stream ended).
    var outcome: String?
    var reason: String?
    var version: Int64?
    /// Teacher answers it trained and held out on.
    var rows: Int?
    /// From the admin API's timestamps, which are whole seconds.
    var trainingSeconds: Double?
    /// Requests completed when it started and when it finished.
    var startedAtRequest: Int?
    var finishedAtRequest: Int?

    enum CodingKeys: String, CodingKey {
        case id, trigger, outcome, reason, version, rows
        case trainingSeconds = "training_seconds"
        case startedAtRequest = "started_at_request"
        case finishedAtRequest = "finished_at_request"
    }
}

/// The figures of a run or of a window of it, in the shape `distill-bench replay --json` prints.
struct ReplayFigures: Encodable, Equatable {
    struct Shares: Encodable, Equatable {
        var cache = 0.0, student = 0.0, teacher = 0.0
    }

    /// Agreement with the teacher's answer; nil (JSON null) where no request was served that way.
    struct Agreement: Encodable, Equatable {
        var cache: Double?, student: Double?, teacher: Double?, overall: Double?

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(cache, forKey: .cache)
            try c.encode(student, forKey: .student)
            try c.encode(teacher, forKey: .teacher)
            try c.encode(overall, forKey: .overall)
        }

        enum CodingKeys: String, CodingKey { case cache, student, teacher, overall }
    }

    struct Accuracy: Encodable, Equatable {
        /// The answers served, against gold.
        var overall: Double?
        /// The teacher's own answers to the same requests, against gold.
        var teacherOnly: Double?

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(overall, forKey: .overall)
            try c.encode(teacherOnly, forKey: .teacherOnly)
        }

        enum CodingKeys: String, CodingKey {
            case overall
            case teacherOnly = "teacher_only"
        }
    }

    struct Latency: Encodable, Equatable {
        var p50: Double, p99: Double
    }

    var requests = 0
    var share = Shares()
    var agreement = Agreement()
    var accuracyGold = Accuracy()
    /// Only the sources that served requests.
    var latencyMilliseconds: [String: Latency] = [:]
    var teacherTokens = 0
    /// The share of the teacher-only baseline's cost saved (0…1): 1 − teacher tokens / baseline tokens.
    var costSaved = 0.0

    enum CodingKeys: String, CodingKey {
        case requests, share, agreement
        case accuracyGold = "accuracy_gold"
        case latencyMilliseconds = "latency_ms"
        case teacherTokens = "teacher_tokens"
        case costSaved = "cost_saved"
    }
}

/// The whole report: the run's figures, the same per window, cost, and where the disagreements go.
struct ReplayReport: Encodable {
    struct Window: Encodable {
        /// Stream positions [start, end).
        var start: Int, end: Int
        var figures: ReplayFigures
    }

    struct Cost: Encodable {
        var pricePer1kTokens: Double
        var teacherTokens: Int
        /// Every request answered by the teacher: each query at the tokens the teacher charged for
        /// it in this run, or at the run's mean per teacher call for a query it never answered.
        var baselineTokens: Int
        var teacherCost: Double
        var baselineCost: Double
        var saved: Double

        enum CodingKeys: String, CodingKey {
            case pricePer1kTokens = "price_per_1k_tokens"
            case teacherTokens = "teacher_tokens"
            case baselineTokens = "baseline_tokens"
            case teacherCost = "teacher_cost"
            case baselineCost = "baseline_cost"
            case saved
        }
    }

    /// A served answer that differs from the teacher's, counted by source and by (teacher, served) pair.
    struct Disagreement: Encodable, Equatable {
        var source: DistillSource
        var teacher: String
        var served: String
        var count: Int
    }

    struct ClassCount: Encodable, Equatable {
        var answer: String
        var count: Int
    }

    struct Failure: Encodable, Equatable {
        /// Index in the stream.
        var request: Int
        var error: String
    }

    struct Spread: Encodable, Equatable {
        var min: Double, p50: Double
    }

    var run: [String: String]
    /// `x-distill-similarity` of the cache's answers and `x-distill-confidence` of the student's.
    var cacheSimilarity: Spread?
    var studentConfidence: Spread?
    /// The distiller's runs during the stream, oldest first.
    var distillRuns: [ReplayDistillRun] = []
    /// What served each scope when the stream ended, as `GET /admin/student` said.
    var student: StudentStatus?
    var whole: ReplayFigures
    var errors: Int
    /// The first failed requests (at most 10), in stream order: what went wrong.
    var failures: [Failure]
    var windows: [Window]
    var cost: Cost
    /// Disagreements with the teacher, the most frequent first (at most 20).
    var disagreements: [Disagreement]
    /// The teacher's answers to the requests the teacher served in the last half of the stream,
    /// the most frequent first (at most 20): the classes the student does not yet take over.
    var lateTeacherClasses: [ClassCount]
    /// Why the teacher answered, counted by the daemon (`GET /metrics`) when the stream ended; nil if it could not be
    /// read. See `teacherCallReasons`.
    var teacherCalls: [String: Int]?
    /// One letter per request in stream order — c(ache), s(tudent), t(eacher), x (error) — so
    /// that two runs can be compared request by request.
    var sources: String

    enum CodingKeys: String, CodingKey {
        case run, whole, errors, failures, windows, cost, disagreements, sources
        case student
        case distillRuns = "distill_runs"
        case lateTeacherClasses = "late_teacher_classes"
        case teacherCalls = "teacher_calls"
        case cacheSimilarity = "cache_similarity"
        case studentConfidence = "student_confidence"
    }

    init(
        outcomes: [ReplayOutcome], queries: [ReplayQuery], window: Int, pricePer1kTokens: Double,
        run: [String: String]
    ) {
        precondition(window > 0)
        let baseline = Self.baselineTokens(outcomes)
        self.run = run
        whole = Self.figures(outcomes[...], queries: queries, baseline: baseline)
        errors = outcomes.count { $0.source == nil }
        failures = outcomes.indices.filter { outcomes[$0].source == nil }.prefix(10).map {
            Failure(request: $0, error: outcomes[$0].error ?? "no answer")
        }
        windows = stride(from: 0, to: outcomes.count, by: window).map { start in
            let end = min(start + window, outcomes.count)
            return Window(start: start, end: end, figures: Self.figures(outcomes[start..<end], queries: queries, baseline: baseline))
        }
        let baselineTokens = baseline.total(outcomes)
        cost = Cost(
            pricePer1kTokens: pricePer1kTokens, teacherTokens: whole.teacherTokens, baselineTokens: baselineTokens,
            teacherCost: Double(whole.teacherTokens) / 1000 * pricePer1kTokens,
            baselineCost: Double(baselineTokens) / 1000 * pricePer1kTokens,
            saved: Double(baselineTokens - whole.teacherTokens) / 1000 * pricePer1kTokens)

        var pairs: [String: Disagreement] = [:]
        for outcome in outcomes {
            guard let source = outcome.source else { continue }
            let teacher = queries[outcome.query].teacher
            guard !Self.same(outcome.answer, teacher) else { continue }
            pairs["\(source)\u{0}\(teacher)\u{0}\(outcome.answer)", default: Disagreement(source: source, teacher: teacher, served: outcome.answer, count: 0)].count += 1
        }
        disagreements = Array(pairs.values.sorted { ($0.count, $1.teacher, $1.served) > ($1.count, $0.teacher, $0.served) }.prefix(20))
        var late: [String: Int] = [:]
        for outcome in outcomes[(outcomes.count / 2)...] where outcome.source == .teacher {
            late[queries[outcome.query].teacher, default: 0] += 1
        }
        lateTeacherClasses = Array(
            late.map { ClassCount(answer: $0.key, count: $0.value) }.sorted { ($0.count, $1.answer) > ($1.count, $0.answer) }.prefix(20))
        func spread(_ values: [Double]) -> Spread? {
            let sorted = values.sorted()
            return sorted.first.map { Spread(min: $0, p50: Self.percentile(sorted, 0.5)) }
        }
        cacheSimilarity = spread(outcomes.compactMap { $0.source == .cache ? $0.similarity : nil })
        studentConfidence = spread(outcomes.compactMap { $0.source == .student ? $0.confidence : nil })
        sources = String(outcomes.map { $0.source.map { $0.rawValue.first! } ?? "x" })
    }

    /// The teacher's answers (`teacherAnswers` in all) by why they were the teacher's, from distilld's Prometheus
    /// exposition: the verified cache explored the lookup (`explored`), the student was unsure (below τ), found the
    /// request novel, or audited its confident answer; the rest (`no student`) met no serving student.
    static func teacherCallReasons(exposition: String, teacherAnswers: Int) -> [String: Int] {
        var counts: [String: Double] = [:]
        for line in exposition.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { continue }
            counts[String(line[..<space]), default: 0] += value
        }
        var reasons = ["explored": Int(counts[#"distill_cache_lookups_total{result="explore"}"#] ?? 0)]
        for decision in ["unsure", "novel", "audit"] {
            reasons[decision] = Int(counts[#"distill_student_decisions_total{decision=""# + decision + #""}"#] ?? 0)
        }
        reasons["no student"] = max(0, teacherAnswers - reasons.values.reduce(0, +))
        return reasons
    }

    /// `teacherCalls` as shares of the requests, in a fixed order (no student first, the cache's explorations last);
    /// nil without them.
    var teacherCallShares: String? {
        teacherCalls.map { reasons in
            ["no student", "unsure", "novel", "audit", "explored"].map { reason in
                "\(reason) " + String(format: "%.1f%%", 100 * Double(reasons[reason] ?? 0) / Double(max(whole.requests, 1)))
            }.joined(separator: ", ")
        }
    }

    /// Answers are compared up to case and spacing: a student may canonicalize what it learned.
    static func same(_ a: String, _ b: String) -> Bool {
        normalize(a) == normalize(b)
    }

    static func normalize(_ text: String) -> String {
        text.lowercased().split(whereSeparator: \.isWhitespace).joined(separator: " ")
    }

    /// What the teacher charges per query, as seen in this run.
    struct Baseline {
        var tokensOfQuery: [Int: Int]
        var meanPerCall: Double

        func tokens(_ outcome: ReplayOutcome) -> Double {
            tokensOfQuery[outcome.query].map(Double.init) ?? meanPerCall
        }

        func total(_ outcomes: some Collection<ReplayOutcome>) -> Int {
            Int(outcomes.reduce(0) { $0 + tokens($1) }.rounded())
        }
    }

    static func baselineTokens(_ outcomes: [ReplayOutcome]) -> Baseline {
        var tokensOfQuery: [Int: Int] = [:]
        var calls = 0, sum = 0
        for outcome in outcomes where outcome.source == .teacher {
            tokensOfQuery[outcome.query] = outcome.tokens
            calls += 1
            sum += outcome.tokens
        }
        return Baseline(tokensOfQuery: tokensOfQuery, meanPerCall: calls == 0 ? 0 : Double(sum) / Double(calls))
    }

    static func figures(_ outcomes: ArraySlice<ReplayOutcome>, queries: [ReplayQuery], baseline: Baseline) -> ReplayFigures {
        var figures = ReplayFigures()
        figures.requests = outcomes.count
        guard !outcomes.isEmpty else { return figures }
        let answered = outcomes.filter { $0.source != nil }
        func ratio(_ part: Int, _ whole: Int) -> Double? { whole == 0 ? nil : Double(part) / Double(whole) }
        func agreeing(_ items: [ReplayOutcome]) -> Int { items.count { same($0.answer, queries[$0.query].teacher) } }

        var agreement: [DistillSource: Double?] = [:]
        for source in DistillSource.allCases {
            let served = answered.filter { $0.source == source }
            let share = Double(served.count) / Double(outcomes.count)
            agreement[source] = ratio(agreeing(served), served.count)
            switch source {
            case .cache: figures.share.cache = share
            case .student: figures.share.student = share
            case .teacher: figures.share.teacher = share
            }
            let latencies = served.map(\.latencyMilliseconds).sorted()
            if !latencies.isEmpty {
                figures.latencyMilliseconds[source.rawValue] = .init(
                    p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99))
            }
        }
        figures.agreement = .init(
            cache: agreement[.cache]!, student: agreement[.student]!, teacher: agreement[.teacher]!,
            overall: ratio(agreeing(answered), answered.count))

        let labelled = answered.filter { queries[$0.query].gold != nil }
        figures.accuracyGold.overall = ratio(labelled.count { same($0.answer, queries[$0.query].gold!) }, labelled.count)
        let allLabelled = outcomes.filter { queries[$0.query].gold != nil }
        figures.accuracyGold.teacherOnly = ratio(
            allLabelled.count { same(queries[$0.query].teacher, queries[$0.query].gold!) }, allLabelled.count)

        figures.teacherTokens = outcomes.reduce(0) { $0 + ($1.source == .teacher ? $1.tokens : 0) }
        let baselineTokens = baseline.total(outcomes)
        figures.costSaved = baselineTokens == 0 ? 0 : 1 - Double(figures.teacherTokens) / Double(baselineTokens)
        return figures
    }

    /// Nearest-rank percentile of sorted values.
    static func percentile(_ sorted: [Double], _ p: Double) -> Double {
        sorted[min(sorted.count - 1, max(0, Int((p * Double(sorted.count)).rounded(.up)) - 1))]
    }
}
