import ArgumentParser
import DistillAPI
import DistillClient
import Foundation

@main
struct Cachectl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cachectl",
        abstract: "Administers a running distilld through its Unix socket (or its TCP port, with the admin token).",
        discussion: """
            Over TCP (--url), the token is read from $DISTILL_ADMIN_TOKEN, never from the command \
            line, where other users could see it; distilld serves its admin API on TCP only when it \
            has an admin.token.

            Exit codes:
              0   success
              1   distilld refused the request (its message says why), or this side failed (a file \
            that cannot be read or written, a bad line in an import)
              2   distilld cannot be reached: not running, or not at --socket/--url
              64  usage error: a bad option or argument (nothing was sent)
            """,
        version: DistillVersion.current,
        subcommands: [
            Status.self, Stats.self, CacheCommand.self, StudentCommand.self, DistillCommand.self, TeacherLog.self, Backup.self,
        ]
    )

    @Option(help: "distilld's Unix socket (default: $DISTILL_SERVER_SOCKET, else var/distilld.sock).")
    var socket: String?

    @Option(help: "distilld's TCP address instead, e.g. http://127.0.0.1:8080 (default: $DISTILL_ADMIN_URL).")
    var url: String?

    private static let environment = ProcessInfo.processInfo.environment

    /// distilld's TCP address, if cachectl is to use TCP.
    private var tcpURL: String? { url ?? Self.environment["DISTILL_ADMIN_URL"] }

    func validate() throws {
        if let tcpURL, !tcpURL.hasPrefix("http://") {
            throw ValidationError("--url (or $DISTILL_ADMIN_URL) takes distilld's TCP address as http://HOST:PORT, not '\(tcpURL)'.")
        }
    }

    var client: DistillClient {
        if let tcpURL { return DistillClient(.tcp(tcpURL), adminToken: Self.environment["DISTILL_ADMIN_TOKEN"]) }
        return DistillClient(.unix(socket ?? Self.environment["DISTILL_SERVER_SOCKET"] ?? "var/distilld.sock"))
    }

    /// What to do about `error`, when cachectl can say.
    static func hint(for error: DistillClientError) -> String? {
        switch error {
        case .socketMissing: "start it, or pass --socket PATH or --url URL"
        case .daemon(let error) where error.code == "invalid_admin_token" && environment["DISTILL_ADMIN_TOKEN"] == nil:
            "set $DISTILL_ADMIN_TOKEN to distilld's admin.token"
        default: nil
        }
    }
}

struct OutputOptions: ParsableArguments {
    @Flag(help: "Print JSON for scripts instead of a table.")
    var json = false
}

/// Runs a command body; a failure becomes one line on stderr that says where it came from, and
/// the exit code the help lists: 1 (distilld refused, or this side failed), 2 (distilld unreachable).
func runCommand(_ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let error as DistillClientError {
        let hint = Cachectl.hint(for: error).map { " (\($0))" } ?? ""
        FileHandle.standardError.write(Data("cachectl: \(error)\(hint)\n".utf8))
        throw error.fromDaemon ? ExitCode.failure : ExitCode(2)
    } catch let error as CachectlError {
        FileHandle.standardError.write(Data("cachectl: \(error)\n".utf8))
        throw ExitCode.failure
    }
}

/// A failure on this side: a file that cannot be read or written, a bad import line, a copy
/// that arrived incomplete.
struct CachectlError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

func printJSON(_ value: some Encodable) throws {
    let encoder = JSONEncoder.admin
    encoder.outputFormatting.insert(.prettyPrinted)
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}

/// Rows of aligned columns.
func table(_ rows: [[String]]) -> String {
    let widths = rows.reduce(into: [Int]()) { widths, row in
        for (i, cell) in row.enumerated() {
            if i < widths.count { widths[i] = max(widths[i], cell.count) } else { widths.append(cell.count) }
        }
    }
    return rows.map { row in
        row.enumerated().map { i, cell in i == row.count - 1 ? cell : cell.padding(toLength: widths[i], withPad: " ", startingAt: 0) }
            .joined(separator: "  ")
    }.joined(separator: "\n")
}

func formatBytes(_ bytes: Int64) -> String {
    ByteCountFormatter.string(fromByteCount: bytes, countStyle: .file)
}

func formatDuration(_ seconds: Double) -> String {
    let s = Int(seconds)
    switch s {
    case ..<60: return "\(s)s"
    case ..<3600: return "\(s / 60)m \(s % 60)s"
    case ..<86400: return "\(s / 3600)h \(s % 3600 / 60)m"
    default: return "\(s / 86400)d \(s % 86400 / 3600)h"
    }
}

struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Version, uptime, listeners, store and teacher state.")

    @ParentCommand var root: Cachectl
    @OptionGroup var options: OutputOptions

    func run() async throws {
        try await runCommand {
            let status = try await root.client.status()
            if options.json { return try printJSON(status) }
            print(
                table([
                    ["distilld", "\(status.version), up \(formatDuration(status.uptimeSeconds)) (since \(status.startedAt.formatted(.iso8601)))"],
                    ["listeners", status.listeners.joined(separator: ", ")],
                    ["store", "\(status.store.path), \(formatBytes(status.store.sizeBytes)), \(status.store.teacherLogRows) teacher log rows"],
                    ["teacher", "\(status.teacher.baseURL), breaker \(status.teacher.breakerState) (\(status.teacher.consecutiveFailures) consecutive failures)"],
                ] + (status.kernels.map { [["kernels", $0]] } ?? [])))
        }
    }
}

struct Stats: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Request, error and teacher counters since start-up.")

    @ParentCommand var root: Cachectl
    @OptionGroup var options: OutputOptions

    func run() async throws {
        try await runCommand {
            let stats = try await root.client.stats()
            if options.json { return try printJSON(stats) }
            func section(_ title: String, _ counts: [String: Int64]) -> [[String]] {
                [[title, ""]] + (counts.isEmpty ? [["  (none)", ""]] : counts.sorted { $0.key < $1.key }.map { ["  \($0.key)", String($0.value)] })
            }
            print(
                table(
                    section("requests by source", stats.requestsBySource)
                        + section("errors by status", stats.errorsByStatus)
                        + section("teacher calls by outcome", stats.teacherCallsByOutcome)
                        + [["teacher tokens", "\(stats.teacherPromptTokens) prompt, \(stats.teacherCompletionTokens) completion"]]))
        }
    }
}

struct TeacherLog: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "teacher-log", abstract: "The log of teacher exchanges.", subcommands: [Export.self, Purge.self])

    @ParentCommand var root: Cachectl

    struct Export: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write every teacher exchange as JSON Lines, oldest first.",
            discussion: "The output is JSON Lines with or without --json; a count goes to stderr.")

        @ParentCommand var group: TeacherLog
        @OptionGroup var options: OutputOptions
        @Option(name: [.short, .long], help: "Write to this file instead of stdout.") var output: String?
        @Option(help: "Only rows with an id above this one.") var after: Int64 = 0

        func run() async throws {
            try await runCommand {
                let count = try await exportPages(to: output, after: after) { after in
                    let page = try await group.root.client.teacherLog(after: after, limit: 1000)
                    return (page.entries, page.nextAfter)
                }
                FileHandle.standardError.write(Data("exported \(count) teacher log rows\n".utf8))
            }
        }
    }

    struct Purge: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Delete the teacher exchanges older than a duration (of one scope, or all).",
            discussion: """
                Deleted exchanges are gone from every later training: a serving student keeps serving, but \
                its successors learn only from what remains. `store.teacher_log_retention_days` does this hourly.
                """)
        @ParentCommand var group: TeacherLog
        @OptionGroup var output: OutputOptions
        @Option(help: "Only this scope's exchanges.") var scope: String?
        @Option(name: .customLong("older-than"), help: "Exchanges older than this: e.g. 90s, 30m, 12h, 7d (0s: all).")
        var olderThan: String

        func validate() throws {
            if parseDuration(olderThan) == nil {
                throw ValidationError("--older-than takes a number with a unit: s, m, h or d (e.g. 30d).")
            }
        }

        func run() async throws {
            try await runCommand {
                let purge = TeacherLogPurgeRequest(scope: scope, olderThanSeconds: parseDuration(olderThan) ?? 0)
                let purged = try await group.root.client.purgeTeacherLog(purge)
                if output.json { return try printJSON(purged) }
                print("purged \(purged.deleted) teacher log rows")
                for scope in purged.scopes where scope.servingStudentLearnedFromThem {
                    print("scope \(scope.scope.prefix(12)): its serving student learned from \(scope.deleted) of them; it keeps serving, its successors will not see them")
                }
            }
        }
    }
}
