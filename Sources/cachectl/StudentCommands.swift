import ArgumentParser
import DistillAPI
import DistillClient
import Foundation

#if canImport(Glibc)
import Glibc
#endif

struct StudentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "student", abstract: "The students that answer cache misses they are sure of.",
        discussion: "A SCOPE is a scope key, or an unambiguous prefix of at least 4 characters of one.",
        subcommands: [Status.self, Versions.self, Promote.self, Rollback.self, Disable.self, Enable.self])

    @ParentCommand var root: Cachectl

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Each scope's serving version: τ, coverage and agreement on its holdout, live agreement of its audits, live coverage.")
        @ParentCommand var group: StudentCommand
        @OptionGroup var output: OutputOptions

        func run() async throws {
            try await runCommand {
                let status = try await group.root.client.studentStatus()
                if output.json { return try printJSON(status) }
                print("target agreement \(percent(status.targetAgreement)), audit share \(percent(status.auditShare))")
                if !status.disabledScopes.isEmpty {
                    print("disabled (the teacher answers): \(status.disabledScopes.map { String($0.prefix(12)) }.joined(separator: ", "))")
                }
                guard !status.scopes.isEmpty else { return print("no scope has a student yet") }
                print(table([["SCOPE", "VERSION", "STATE", "τ", "COVERAGE", "AGREEMENT", "ANSWERED", "AUDITS", "LIVE AGREEMENT", "LIVE COVERAGE", "WHAT IT IS"]] + status.scopes.map { scope in
                    [String(scope.scope.prefix(12)), String(scope.version), scope.disabled ? "disabled" : scope.serving ? "serving" : "suspended",
                     scope.threshold.map { String(format: "%.3f", $0) } ?? "none", percent(scope.coverage), percent(scope.holdoutAgreement),
                     String(scope.answered), String(scope.audits), scope.liveAgreement.map(percent) ?? "-",
                     scope.liveCoverage.map(percent) ?? "-", scope.description?.description ?? "-"]
                }))
                // What guards the answers: novelty abstentions, the audits in force, and the two sequential tests.
                let guards = status.scopes.map { scope -> [String] in
                    let shift = scope.shiftEvident == true ? "evident" : scope.shiftSuspected.map { $0 ? "suspected" : "no" } ?? "-"
                    let newClasses: String = scope.newClasses.map { $0.isEmpty ? "-" : $0.joined(separator: ", ") } ?? "-"
                    return [
                        String(scope.scope.prefix(12)), scope.novelAbstentions.map { String($0) } ?? "-",
                        scope.auditShareInForce.map(percent) ?? "-", scope.auditTest.map(StudentCommand.testState) ?? "-",
                        scope.noveltyTest.map(StudentCommand.testState) ?? "-", shift, newClasses,
                    ]
                }
                print(table([["SCOPE", "NOVEL", "AUDIT SHARE", "AUDIT TEST", "SHIFT TEST", "SHIFT", "NEW CLASSES"]] + guards))
            }
        }
    }

    /// A sequential test's progress to its alarm, over how many observations (of them failures).
    static func testState(_ test: StudentStatus.SequentialTestState) -> String {
        (test.alarmed ? "ALARMED" : percent(test.progress)) + " (\(test.failures)/\(test.observations))"
    }

    struct Versions: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Every stored version, newest first, with its holdout figures and the gate's decision.",
            discussion: "COVERAGE and AGREEMENT are on the holdout weighted back to the traffic, as `student status` shows them.")
        @ParentCommand var group: StudentCommand
        @OptionGroup var output: OutputOptions
        @Option(help: "Only this scope's versions.") var scope: String?

        func run() async throws {
            try await runCommand {
                let versions = try await group.root.client.studentVersions(scope: scope)
                if output.json { return try printJSON(versions) }
                guard !versions.isEmpty else { return print("no student versions yet") }
                print(table([["VERSION", "SCOPE", "STATUS", "CREATED", "ROWS", "CLASSES", "τ", "COVERAGE", "AGREEMENT", "FLOAT AGREEMENT", "DECISION"]] + versions.map { version in
                    let metrics = version.metrics
                    return [String(version.id), String(version.scope.prefix(12)), version.status, version.createdAt.formatted(.iso8601),
                     metrics.map { String($0.trainingRows + $0.holdout.count) } ?? "?", metrics.map { String($0.classes) } ?? "?",
                     metrics?.threshold.map { String(format: "%.3f", $0) } ?? "none",
                     metrics.map { percent($0.expected.coverage) } ?? "?", metrics.map { percent($0.expected.agreement) } ?? "?",
                     metrics.map { percent($0.floatHoldout.acceptedAgreement) } ?? "?", metrics?.decision ?? ""]
                }))
            }
        }
    }

    struct Promote: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make a stored version its scope's active one.",
            discussion: "A version the promotion gate rejected is refused unless --force is given.")
        @ParentCommand var group: StudentCommand
        @OptionGroup var output: OutputOptions
        @Argument(help: "The version's id (cachectl student versions).") var version: Int64
        @Flag(help: "Promote it even though the promotion gate rejected it.") var force = false

        func run() async throws {
            try await runCommand {
                let promoted = try await group.root.client.promoteStudentVersion(version, force: force)
                if output.json { return try printJSON(promoted) }
                print("version \(promoted.id) now serves scope \(promoted.scope.prefix(12))")
            }
        }
    }

    struct Rollback: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Serve the scope's previous version again.",
            discussion: "The previous version is the newest one that served before the current (active or suspended) one.")
        @ParentCommand var group: StudentCommand
        @OptionGroup var output: OutputOptions
        @Option(help: "The scope (required when more than one scope has versions).") var scope: String?

        func run() async throws {
            try await runCommand {
                let restored = try await group.root.client.rollbackStudent(scope: scope)
                if output.json { return try printJSON(restored) }
                print("version \(restored.id) serves scope \(restored.scope.prefix(12)) again")
            }
        }
    }
}

extension StudentCommand {
    struct Disable: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Take a scope's student out of service: the teacher answers the scope.",
            discussion: "Its versions are kept, and new ones are still trained; `student enable` puts it back.")
        @ParentCommand var group: StudentCommand
        @Option(help: "The scope.") var scope: String

        func run() async throws {
            try await runCommand {
                let setting = try await group.root.client.setStudentEnabled(false, scope: scope)
                print("the student of scope \((setting.scope ?? scope).prefix(12)) is disabled: the teacher answers it")
            }
        }
    }

    struct Enable: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Put a disabled scope's student back in service.")
        @ParentCommand var group: StudentCommand
        @Option(help: "The scope.") var scope: String

        func run() async throws {
            try await runCommand {
                let setting = try await group.root.client.setStudentEnabled(true, scope: scope)
                print("the student of scope \((setting.scope ?? scope).prefix(12)) is enabled")
            }
        }
    }
}

struct DistillCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "distill", abstract: "Re-distillation: training students from the teacher log.",
        subcommands: [Run.self, Status.self])

    @ParentCommand var root: Cachectl

    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Train now: one scope, or every scope with distill.min_rows teacher answers.",
            discussion: "Each candidate goes through the same promotion gate as a scheduled run.")
        @ParentCommand var group: DistillCommand
        @OptionGroup var output: OutputOptions
        @Option(help: "Only this scope.") var scope: String?
        @Flag(help: "Wait until the runs have finished, with a progress bar (on a terminal).") var wait = false

        func run() async throws {
            try await runCommand {
                let client = group.root.client
                let queued = try await client.requestDistillRuns(scope: scope)
                guard wait else {
                    if output.json { return try printJSON(queued) }
                    return print(queued.map { "run \($0.id) queued for scope \($0.scope.prefix(12))" }.joined(separator: "\n"))
                }
                let ids = Set(queued.map(\.id))
                let progress = ProgressLine()
                var runs: [DistillRunInfo]
                while true {
                    runs = try await client.distillStatus().runs.filter { ids.contains($0.id) }
                    if runs.allSatisfy(\.isFinished) { break }
                    if let current = runs.first(where: { !$0.isFinished && $0.phase != .queued }) ?? runs.first(where: { !$0.isFinished }) {
                        progress.show(current, finished: runs.count(where: \.isFinished), of: runs.count)
                    }
                    try await Task.sleep(for: .milliseconds(250))
                }
                progress.clear()
                if output.json { return try printJSON(runs) }
                print(runTable(runs.sorted { $0.id < $1.id }))
                if runs.contains(where: { $0.outcome == .failed || $0.outcome == .cancelled }) { throw ExitCode.failure }
            }
        }
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The schedule, and the runs queued, running and recently finished.")
        @ParentCommand var group: DistillCommand
        @OptionGroup var output: OutputOptions

        func run() async throws {
            try await runCommand {
                let status = try await group.root.client.distillStatus()
                if output.json { return try printJSON(status) }
                print(status.enabled
                    ? "on each teacher answer (every \(formatDuration(status.intervalSeconds)) as a backstop): scopes with \(status.minNewRows) new teacher answers, or a tenth of those last trained on if more (\(status.minRows) for a first student)"
                    : "scheduled runs are off (distill.enabled); cachectl distill run still trains")
                print(status.runs.isEmpty ? "no runs since start-up" : runTable(status.runs))
            }
        }
    }
}

private func runTable(_ runs: [DistillRunInfo]) -> String {
    table([["RUN", "SCOPE", "TRIGGER", "PHASE", "ROWS", "EPOCHS", "OUTCOME", "VERSION", "WHY"]] + runs.map { run in
        [String(run.id), String(run.scope.prefix(12)), run.trigger.rawValue, run.phase.rawValue, run.rows.map(String.init) ?? "-", String(run.epoch),
         run.outcome?.rawValue ?? "-", run.version.map(String.init) ?? "-", run.reason ?? ""]
    })
}

private func percent(_ share: Double) -> String {
    String(format: "%.1f%%", share * 100)
}

/// A progress line on stderr, redrawn in place on a terminal; off a terminal, one line per phase.
private final class ProgressLine {
    private let isTerminal = isatty(STDERR_FILENO) != 0
    private var lastPhase: DistillRunPhase?

    func show(_ run: DistillRunInfo, finished: Int, of total: Int) {
        let label = "run \(run.id) (\(finished + 1)/\(total)) \(run.scope.prefix(12)) \(run.phase)"
        guard isTerminal else {
            if run.phase != lastPhase { FileHandle.standardError.write(Data("\(label)\n".utf8)) }
            lastPhase = run.phase
            return
        }
        // Training usually stops early; the bar shows epochs against the most there may be.
        let width = 30
        let filled = run.phase == .training ? min(width, run.epoch * width / max(run.maxEpochs, 1)) : 0
        let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
        let epochs = run.phase == .training ? " epoch \(run.epoch)" : ""
        FileHandle.standardError.write(Data("\r\u{1B}[K\(label) [\(bar)]\(epochs)".utf8))
    }

    func clear() {
        if isTerminal { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
    }
}
