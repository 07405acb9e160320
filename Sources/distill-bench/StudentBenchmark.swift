import ArgumentParser
import Embedding
import Foundation
import SeededRandom
import Student
import TeacherSimulator

/// The student on Banking77: agreement with the teacher, coverage at τ, calibration, float against int8, soft
/// against hard labels, training time and prediction latency (docs/benchmarks.md, "Student").
struct StudentBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "student",
        abstract: "Train and evaluate students on Banking77 with the soft-label and the GPT-4 teacher.",
        discussion: """
            For each seed, the teacher's answers are put in a seeded order; the student trains on the first \
            --train (oldest first: the newest share is its holdout) and is evaluated on the next --test, which it \
            never sees. Three students per seed: the soft-label teacher with its top-5 as soft targets, the same \
            answers as hard labels, and GPT-4's hard answers. Seed 1 is StudentTests' split.
            """)

    @Option(help: "The directory of teacher_soft.jsonl and teacher_gpt4.csv.") var data = "../shared/data/banking77"
    @Option(help: "Model directory (default: $DISTILL_MODEL_DIR, else models/all-MiniLM-L6-v2).") var model: String?
    @Option(help: "Seeds of the orders, comma-separated.") var seeds = "1,2,3"
    @Option(help: "Teacher answers to learn from.") var train = 3000
    @Option(help: "Unseen queries to evaluate on.") var test = 1000
    @Option(help: "Hidden layer widths, comma-separated; 0 for none (default: the trainer's).") var hidden: String?
    @Option(help: "α of the distillation loss.") var alpha: Float?
    @Option(help: "T of the distillation loss.") var temperature: Float?
    @Option(help: "Adam's learning rate.") var learningRate: Float?
    @Option(help: "z of τ's Wilson lower bound.") var z: Double?
    @Option(help: "Cross-fitting folds of calibration and τ; 0 for the holdout only.") var folds: Int?
    @Option(help: "Dropout after each hidden layer.") var dropout: Float?
    @Option(help: "AdamW's weight decay.") var weightDecay: Float?
    @Option(help: "Examples per mini-batch.") var batchSize: Int?

    func validate() throws {
        guard train >= 10, test >= 1, train + test <= 4081 else {
            throw ValidationError("--train and --test must be positive and fit the 4,081 GPT-4 answers together")
        }
    }

    struct Case {
        var name: String
        var training: [TeacherExchange]
        var unseen: [TeacherExchange]
        var gold: [String]
    }

    struct Row {
        var agreement = 0.0, acceptedAgreement = 0.0, coverage = 0.0, gold = 0.0
        var floatAgreement = 0.0, floatAcceptedAgreement = 0.0, floatCoverage = 0.0
        var threshold = 0.0, eceBefore = 0.0, eceAfter = 0.0, epochs = 0.0, seconds = 0.0

        static func + (a: Row, b: Row) -> Row {
            Row(
                agreement: a.agreement + b.agreement, acceptedAgreement: a.acceptedAgreement + b.acceptedAgreement,
                coverage: a.coverage + b.coverage, gold: a.gold + b.gold, floatAgreement: a.floatAgreement + b.floatAgreement,
                floatAcceptedAgreement: a.floatAcceptedAgreement + b.floatAcceptedAgreement,
                floatCoverage: a.floatCoverage + b.floatCoverage, threshold: a.threshold + b.threshold,
                eceBefore: a.eceBefore + b.eceBefore, eceAfter: a.eceAfter + b.eceAfter, epochs: a.epochs + b.epochs,
                seconds: a.seconds + b.seconds)
        }

        func divided(by n: Double) -> Row {
            Row(
                agreement: agreement / n, acceptedAgreement: acceptedAgreement / n, coverage: coverage / n, gold: gold / n,
                floatAgreement: floatAgreement / n, floatAcceptedAgreement: floatAcceptedAgreement / n,
                floatCoverage: floatCoverage / n, threshold: threshold / n, eceBefore: eceBefore / n,
                eceAfter: eceAfter / n, epochs: epochs / n, seconds: seconds / n)
        }
    }

    func run() throws {
        var configuration = TrainingConfiguration()
        if let hidden { configuration.hiddenWidths = hidden == "0" ? [] : hidden.split(separator: ",").compactMap { Int($0) } }
        if let alpha { configuration.alpha = alpha }
        if let temperature { configuration.distillationTemperature = temperature }
        if let learningRate { configuration.learningRate = learningRate }
        if let z { configuration.thresholdConfidenceZ = z }
        if let folds { configuration.calibrationFolds = folds }
        if let dropout { configuration.dropout = dropout }
        if let weightDecay { configuration.weightDecay = weightDecay }
        if let batchSize { configuration.batchSize = batchSize }

        let soft = try softRows()
        let gpt4 = try CSV.parse(String(contentsOfFile: data + "/teacher_gpt4.csv", encoding: .utf8)).dropFirst()
            .filter { $0.count == 3 }
        let directory = model ?? ProcessInfo.processInfo.environment["DISTILL_MODEL_DIR"] ?? "models/all-MiniLM-L6-v2"
        let encoder = try BertEncoder(modelDirectory: URL(fileURLWithPath: directory))
        progress("embedding \(soft.count) queries…")
        let embeddings = encoder.embed(soft.map(\.text))
        var embeddingOfText: [String: [Float]] = [:]
        for (row, embedding) in zip(soft, embeddings) { embeddingOfText[row.text] = embedding }
        if let missing = gpt4.first(where: { embeddingOfText[$0[0]] == nil }) {
            throw ValidationError("a GPT-4 query is not in teacher_soft.jsonl: \(missing[0])")
        }

        print("| seed | teacher, labels | agreement | at τ | coverage | vs gold | float agreement | float at τ | float coverage | τ | ECE before → after | epochs | train s |")
        print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|")
        var sums: [String: Row] = [:]
        var names: [String] = []
        let seeds = self.seeds.split(separator: ",").compactMap { UInt64($0) }
        var latencyModels: (StudentModel, Student<FloatNetwork>, [TeacherExchange])?
        for seed in seeds {
            let softOrder = Self.shuffled(soft, seed: seed)
            let gptOrder = Self.shuffled(Array(gpt4), seed: seed)
            func exchange(_ row: SoftRow, soft: Bool) -> TeacherExchange {
                TeacherExchange(
                    embedding: embeddingOfText[row.text]!, answer: row.top[0].0,
                    alternatives: soft ? row.top.map { (text: $0.0, logprob: log($0.1)) } : [])
            }
            let cases = [
                Case(
                    name: "soft-label teacher, soft", training: softOrder.prefix(train).map { exchange($0, soft: true) },
                    unseen: softOrder[train..<train + test].map { exchange($0, soft: false) },
                    gold: softOrder[train..<train + test].map(\.gold)),
                Case(
                    name: "soft-label teacher, hard", training: softOrder.prefix(train).map { exchange($0, soft: false) },
                    unseen: softOrder[train..<train + test].map { exchange($0, soft: false) },
                    gold: softOrder[train..<train + test].map(\.gold)),
                Case(
                    name: "GPT-4 teacher, hard",
                    training: gptOrder.prefix(train).map { TeacherExchange(embedding: embeddingOfText[$0[0]]!, answer: $0[2]) },
                    unseen: gptOrder[train..<train + test].map { TeacherExchange(embedding: embeddingOfText[$0[0]]!, answer: $0[2]) },
                    gold: gptOrder[train..<train + test].map { $0[1] }),
            ]
            for item in cases {
                let start = ContinuousClock.now
                let result = try StudentTrainer.train(item.training, configuration: configuration)
                let elapsed = ContinuousClock.now - start
                let int8 = result.model.evaluate(item.unseen), float = result.floatModel.evaluate(item.unseen)
                let right = zip(item.unseen, item.gold).count { result.model.predict($0.embedding).answer == $1 }
                let report = result.model.report
                let row = Row(
                    agreement: int8.agreement, acceptedAgreement: int8.acceptedAgreement, coverage: int8.coverage,
                    gold: Double(right) / Double(item.unseen.count), floatAgreement: float.agreement,
                    floatAcceptedAgreement: float.acceptedAgreement, floatCoverage: float.coverage,
                    threshold: Double(result.model.threshold ?? .nan), eceBefore: report.calibrationErrorBefore,
                    eceAfter: report.calibrationErrorAfter, epochs: Double(report.epochs),
                    seconds: Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18)
                print(Self.format(String(seed), item.name, row))
                if sums[item.name] == nil { names.append(item.name) }
                sums[item.name, default: Row()] = sums[item.name, default: Row()] + row
                if latencyModels == nil { latencyModels = (result.model, result.floatModel, item.unseen) }
            }
        }
        for name in names { print(Self.format("mean", name, sums[name]!.divided(by: Double(seeds.count)))) }
        if let (int8, float, queries) = latencyModels {
            print(String(
                format: "\nprediction, one query, median of %d: int8 %.1f µs, float %.1f µs",
                queries.count, Self.medianMicroseconds(int8, queries), Self.medianMicroseconds(float, queries)))
        }
    }

    static func format(_ seed: String, _ name: String, _ row: Row) -> String {
        func percent(_ value: Double) -> String { String(format: "%.1f%%", 100 * value) }
        return "| \(seed) | \(name) | \(percent(row.agreement)) | \(percent(row.acceptedAgreement)) | \(percent(row.coverage)) | "
            + "\(percent(row.gold)) | \(percent(row.floatAgreement)) | \(percent(row.floatAcceptedAgreement)) | "
            + "\(percent(row.floatCoverage)) | \(String(format: "%.3f", row.threshold)) | "
            + String(format: "%.3f → %.3f | %.0f | %.1f |", row.eceBefore, row.eceAfter, row.epochs, row.seconds)
    }

    static func medianMicroseconds<Network>(_ student: Student<Network>, _ queries: [TeacherExchange]) -> Double {
        var samples: [Double] = []
        for query in queries {
            let start = ContinuousClock.now
            _ = student.predict(query.embedding)
            let elapsed = ContinuousClock.now - start
            samples.append(Double(elapsed.components.attoseconds) * 1e-12 + Double(elapsed.components.seconds) * 1e6)
        }
        return samples.sorted()[samples.count / 2]
    }

    /// The order of StudentTests for seed 1: Fisher–Yates from the last element with SplitMix64.
    static func shuffled<T>(_ rows: [T], seed: UInt64) -> [T] {
        var rows = rows
        var generator = SplitMix64(seed: seed)
        for i in stride(from: rows.count - 1, to: 0, by: -1) { rows.swapAt(i, Int(generator.next() % UInt64(i + 1))) }
        return rows
    }

    struct SoftRow {
        var text: String
        var gold: String
        var top: [(String, Double)]
    }

    func softRows() throws -> [SoftRow] {
        try String(contentsOfFile: data + "/teacher_soft.jsonl", encoding: .utf8).split(separator: "\n").map { line in
            guard let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                let text = object["text"] as? String, let gold = object["gold"] as? String,
                let top = object["top"] as? [[Any]]
            else { throw ValidationError("teacher_soft.jsonl: a line is not {text, gold, top}") }
            return SoftRow(
                text: text, gold: gold,
                top: try top.map { pair in
                    guard pair.count == 2, let intent = pair[0] as? String, let probability = pair[1] as? Double else {
                        throw ValidationError("teacher_soft.jsonl: top is not [[intent, probability]]")
                    }
                    return (intent, probability)
                })
        }
    }

    private func progress(_ message: String) {
        FileHandle.standardError.write(Data((message + "\n").utf8))
    }
}
