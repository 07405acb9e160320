import ArgumentParser
import DistillAPI
import Embedding
import Foundation
import SQLiteStore
import Storage
import Student
import TeacherSimulator

/// Scores every student version a replay stored on the teacher file's queries it never trained on: the coverage and
/// agreement its τ gave, against the coverage the target would have allowed on the same queries. Where the two part,
/// τ (its calibration answers, their weights) held the version back, not its network (docs/benchmarks.md, Replay).
struct VersionsBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "versions",
        abstract: "Score the student versions of a kept replay on the queries each never trained on.",
        discussion: """
            Reads the store of `distill-bench replay --keep` (its run directory, or a data directory holding \
            distill.sqlite) and the teacher file the replay ran on. Each version is scored on the file's queries \
            whose prompts were not among its training answers (its holdout's are unseen too): coverage and agreement \
            with the teacher at its τ, and the coverage of the largest top share by confidence that agrees at least \
            --target; and the version the gate judged it against, at that one's τ, on the same queries. Prints a \
            Markdown table, oldest version first.
            """)

    @Argument(help: "The replay's run directory (`replay --keep` prints it), or a data directory.") var directory: String
    @Option(help: "The soft-label teacher file the replay ran on.") var softJsonl: String?
    @Option(help: "The GPT-4 teacher file the replay ran on.") var gpt4Csv: String?
    @Option(help: "The embedding model directory.") var model = "models/all-MiniLM-L6-v2"
    @Option(help: "The agreement the last column's coverage must reach.") var target = 0.95
    @Option(help: "The daemon's distill.holdout_share when it trained them.") var holdoutShare = HoldoutFold.defaultShare

    func validate() throws {
        guard (softJsonl == nil) != (gpt4Csv == nil) else { throw ValidationError("give one of --soft-jsonl and --gpt4-csv") }
        guard (0...1).contains(target) else { throw ValidationError("--target must be within 0…1") }
    }

    func run() async throws {
        let dataset = try softJsonl.map { try TeacherDataset.loadSoftJSONL(path: $0) } ?? TeacherDataset.loadGPT4CSV(path: gpt4Csv!)
        let queries = ReplayBenchmark.uniqueQueries(dataset)
        let nested = URL(fileURLWithPath: directory).appendingPathComponent("data/distill.sqlite").path
        let path = FileManager.default.fileExists(atPath: nested) ? nested : URL(fileURLWithPath: directory).appendingPathComponent("distill.sqlite").path
        guard FileManager.default.fileExists(atPath: path) else { throw ValidationError("no distill.sqlite in \(directory) or its data/") }
        let store = try SQLiteStore(path: path)
        let listed = try await store.studentVersions(scope: nil).sorted { ($0.id ?? 0) < ($1.id ?? 0) }
        guard !listed.isEmpty else { throw ValidationError("\(path) holds no student version") }

        FileHandle.standardError.write(Data("embedding \(queries.count) queries…\n".utf8))
        let embeddings = try BertEncoder(modelDirectory: URL(fileURLWithPath: model)).embed(queries.map(\.text))
        let fold = HoldoutFold(share: holdoutShare)
        var logs: [String: [TeacherLogRecord]] = [:]

        print(
            "| version | status | answers (held out) | τ | unseen queries | coverage at τ | agreement at τ "
                + "| coverage at \(Self.percent(target)) | judged against: coverage / agreement at its τ |")
        print("|---:|---|---:|---:|---:|---:|---:|---:|---|")
        var students: [Int64: StudentModel] = [:]
        func decoded(_ id: Int64) async throws -> StudentModel? {
            if let known = students[id] { return known }
            // The listing leaves the serialized models out.
            guard let version = try await store.studentVersion(id: id) else { return nil }
            students[id] = try StudentModel(encoded: version.model)
            return students[id]
        }
        for version in listed {
            guard let id = version.id, let student = try await decoded(id) else { continue }
            let report = student.report
            let rows = report.trainingCount + report.holdout.count
            if logs[version.scope] == nil { logs[version.scope] = try await store.teacherLog(scope: version.scope) }
            let trained = Self.trainedPrompts(log: logs[version.scope]!, through: version.trainedThrough, rows: rows, fold: fold)
            let unseen = queries.indices.filter { !trained.contains(queries[$0].text) }
            func score(_ model: StudentModel) -> VersionScore {
                let predictions = unseen.map { model.predict(embeddings[$0]) }
                return VersionScore(
                    confidences: predictions.map(\.confidence), confident: predictions.map(\.isConfident),
                    agrees: zip(unseen, predictions).map { ReplayReport.same($1.answer, queries[$0].teacher) }, target: target)
            }
            let own = score(student)
            var incumbent = "–"
            let metrics = try? JSONDecoder().decode(StudentVersionMetrics.self, from: Data(version.metrics.utf8))
            if let judge = metrics?.incumbent?.version, let other = try await decoded(judge) {
                let them = score(other)
                incumbent = "v\(judge): \(Self.percent(them.coverage)) / \(them.agreement.map(Self.percent) ?? "–")"
            }
            print(
                "| v\(id) | \(version.status.rawValue) | \(rows) (\(report.holdout.count)) | "
                    + "\(student.threshold.map { String(format: "%.3f", $0) } ?? "–") | \(unseen.count) | "
                    + "\(Self.percent(own.coverage)) | \(own.agreement.map(Self.percent) ?? "–") | "
                    + "\(Self.percent(own.coverageAtTarget)) | \(incumbent) |")
        }
    }

    /// The prompts a version trained on: of the answers it read (the newest `rows` of the scope's log through id
    /// `through`, those with a prompt and an answer, as the distiller reads them), those its fold did not hold out.
    static func trainedPrompts(log: [TeacherLogRecord], through: Int64, rows: Int, fold: HoldoutFold) -> Set<String> {
        let read = log.filter { ($0.id ?? 0) <= through && !$0.prompt.isEmpty && !$0.answer.isEmpty }.suffix(rows)
        return Set(read.map(\.prompt).filter { !fold.holdsOut($0, rows: rows) })
    }

    static func percent(_ share: Double) -> String {
        String(format: "%.1f%%", share * 100)
    }
}

/// One version on queries it never trained on.
struct VersionScore: Equatable {
    /// The share it accepts at its τ, and their agreement with the teacher (nil when it accepts none).
    var coverage: Double
    var agreement: Double?
    /// The largest share, its most confident queries first (ties together), that agrees at least the target.
    var coverageAtTarget: Double

    init(confidences: [Float], confident: [Bool], agrees: [Bool], target: Double) {
        precondition(confidences.count == confident.count && confident.count == agrees.count)
        let count = Double(max(confidences.count, 1))
        let accepted = confident.indices.filter { confident[$0] }
        coverage = Double(accepted.count) / count
        agreement = accepted.isEmpty ? nil : Double(accepted.count { agrees[$0] }) / Double(accepted.count)
        let order = confidences.indices.sorted { confidences[$0] > confidences[$1] }
        var taken = 0, agreeing = 0, best = 0
        while taken < order.count {
            let value = confidences[order[taken]]
            while taken < order.count && confidences[order[taken]] == value {
                agreeing += agrees[order[taken]] ? 1 : 0
                taken += 1
            }
            if Double(agreeing) >= target * Double(taken) { best = taken }
        }
        coverageAtTarget = Double(best) / count
    }
}
