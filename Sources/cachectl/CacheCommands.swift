import ArgumentParser
import DistillAPI
import DistillClient
import Foundation

#if canImport(Glibc)
import Glibc
#endif

struct CacheCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cache", abstract: "The semantic cache.",
        discussion: "A SCOPE is a scope key as `cache list` or `cache stats` shows it, or an unambiguous prefix of one.",
        subcommands: [List.self, Show.self, Search.self, Invalidate.self, Purge.self, Export.self, Import.self, CacheStatsCommand.self, Configure.self])

    @ParentCommand var root: Cachectl

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Entries, oldest first.")
        @ParentCommand var group: CacheCommand
        @OptionGroup var output: OutputOptions
        @Option(help: "Only this scope's entries.") var scope: String?
        @Option(help: "At most this many entries.") var limit = 50

        func run() async throws {
            try await runCommand {
                let page = try await group.root.client.cacheEntries(scope: scope, limit: limit)
                if output.json { return try printJSON(page) }
                print(table([["ID", "SCOPE", "HITS", "CREATED", "PROMPT", "ANSWER"]] + page.entries.map { entry in
                    [String(entry.id), String(entry.scope.prefix(12)), String(entry.hits), entry.createdAt.formatted(.iso8601),
                     clip(entry.prompt, 48), clip(entry.answer, 32)]
                }))
                if page.nextAfter != nil { print("(more: raise --limit, or use cache export)") }
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "One entry, with its request's messages.")
        @ParentCommand var group: CacheCommand
        @OptionGroup var output: OutputOptions
        @Argument(help: "The entry's id.") var id: Int64

        func run() async throws {
            try await runCommand {
                let entry = try await group.root.client.cacheEntry(id: id)
                if output.json { return try printJSON(entry) }
                print(table([
                    ["id", String(entry.id)], ["scope", entry.scope], ["prompt", entry.prompt], ["answer", entry.answer],
                    ["finish reason", entry.finishReason], ["created", entry.createdAt.formatted(.iso8601)],
                    ["expires", entry.expiresAt?.formatted(.iso8601) ?? "never"],
                    ["hits", "\(entry.hits) (last \(entry.lastHitAt?.formatted(.iso8601) ?? "never"))"],
                    ["messages", entry.messages?.encodedString ?? ""],
                ]))
            }
        }
    }

    struct Search: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The entries nearest to a text, with their similarity.")
        @ParentCommand var group: CacheCommand
        @OptionGroup var output: OutputOptions
        @Argument(help: "The text to look for.") var text: String
        @Option(help: "Only this scope (default: every scope).") var scope: String?
        @Option(help: "How many entries.") var limit = 10

        func validate() throws {
            guard !text.allSatisfy(\.isWhitespace) else {
                throw ValidationError("Give the text to search for: an empty one is near to nothing.")
            }
        }

        func run() async throws {
            try await runCommand {
                let results = try await group.root.client.searchCache(CacheSearchRequest(text: text, scope: scope, limit: limit))
                if output.json { return try printJSON(results) }
                print(table([["SIMILARITY", "ID", "SCOPE", "PROMPT", "ANSWER"]] + results.map { result in
                    [String(format: "%.4f", result.similarity), String(result.entry.id), String(result.entry.scope.prefix(12)),
                     clip(result.entry.prompt, 48), clip(result.entry.answer, 32)]
                }))
            }
        }
    }

    struct Invalidate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete entries by id.")
        @ParentCommand var group: CacheCommand
        @Argument(help: "Entry ids.") var ids: [Int64]

        func run() async throws {
            try await runCommand {
                var deleted = 0
                for id in ids {
                    deleted += try await group.root.client.invalidateCacheEntry(id: id)
                }
                print("invalidated \(deleted) of \(ids.count) entries")
            }
        }
    }

    struct Purge: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete the entries of a scope, or older than a duration.")
        @ParentCommand var group: CacheCommand
        @Option(help: "Only this scope's entries.") var scope: String?
        @Option(name: .customLong("older-than"), help: "Only entries older than this: e.g. 90s, 30m, 12h, 7d.")
        var olderThan: String?
        @Flag(help: "Purge every entry (needed when neither --scope nor --older-than is given).") var all = false

        func validate() throws {
            if let olderThan, parseDuration(olderThan) == nil {
                throw ValidationError("--older-than takes a number with a unit: s, m, h or d (e.g. 7d).")
            }
            guard scope != nil || olderThan != nil || all else {
                throw ValidationError("Say which entries: --scope, --older-than, or --all for every entry.")
            }
        }

        func run() async throws {
            try await runCommand {
                let request = CachePurgeRequest(scope: scope, olderThanSeconds: olderThan.flatMap(parseDuration))
                let count = try await group.root.client.purgeCache(request)
                print("purged \(count) entries")
            }
        }
    }

    struct Export: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write every entry, with its vector, as JSON Lines.",
            discussion: "The output is JSON Lines with or without --json; a count goes to stderr.")
        @ParentCommand var group: CacheCommand
        @OptionGroup var output: OutputOptions
        @Option(name: [.short, .long], help: "Write to this file instead of stdout.") var file: String?

        func run() async throws {
            try await runCommand {
                let count = try await exportPages(to: file, after: 0) { after in
                    let page = try await group.root.client.exportCache(after: after, limit: 500)
                    return (page.lines, page.nextAfter)
                }
                FileHandle.standardError.write(Data("exported \(count) cache entries\n".utf8))
            }
        }
    }

    struct Import: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add entries from JSON Lines written by `cache export`.",
            discussion: """
                Vectors made by another embedding model are re-computed. An entry replaces one with the same \
                scope and message. Every line is checked before any is sent: a bad one imports nothing.
                """)
        @ParentCommand var group: CacheCommand
        @Argument(help: "The file to read, or - for stdin.") var file: String

        func run() async throws {
            try await runCommand {
                let lines = try readLines()
                var imported = 0
                for start in stride(from: 0, to: lines.count, by: 200) {
                    imported += try await group.root.client.importCache(Array(lines[start..<min(start + 200, lines.count)]))
                }
                print("imported \(imported) entries")
            }
        }

        private func readLines() throws -> [CacheExportLine] {
            let name = file == "-" ? "stdin" : file
            let data: Data?
            if file == "-" {
                data = try? FileHandle.standardInput.readToEnd()
            } else {
                let descriptor = open(file, O_RDONLY | O_CLOEXEC)
                guard descriptor >= 0 else { throw CachectlError("cannot read \(file): \(String(cString: strerror(errno)))") }
                data = try? FileHandle(fileDescriptor: descriptor, closeOnDealloc: true).readToEnd()
            }
            guard let data else { throw CachectlError("cannot read \(name)") }
            let decoder = JSONDecoder.admin
            var lines: [CacheExportLine] = []
            for (index, line) in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).enumerated()
            where !line.allSatisfy({ $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") || $0 == UInt8(ascii: "\r") }) {
                do {
                    lines.append(try decoder.decode(CacheExportLine.self, from: line))
                } catch {
                    throw CachectlError("\(name):\(index + 1): not a cache export line: \(describe(error))")
                }
            }
            return lines
        }
    }

    struct CacheStatsCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "stats", abstract: "Entries, scopes and their settings, hits, misses, bypasses, evictions.")
        @ParentCommand var group: CacheCommand
        @OptionGroup var output: OutputOptions

        func run() async throws {
            try await runCommand {
                let stats = try await group.root.client.cacheStats()
                if output.json { return try printJSON(stats) }
                func counts(_ values: [String: Int64]) -> String {
                    values.isEmpty ? "none" : values.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
                }
                print(table([
                    ["entries", "\(stats.entries) (\(stats.indexed) indexed)"],
                    ["held answers", "\(stats.heldAnswers) (\(formatBytes(Int64(stats.heldAnswerBytes))))"],
                    ["lookups", counts(stats.lookups)], ["bypasses", counts(stats.bypasses)],
                    ["evictions", counts(stats.evictions)],
                ]))
                print("")
                func percent(_ value: Double?) -> String { value.map { String(format: "%.2f%%", 100 * $0) } ?? "-" }
                print(table([["SCOPE", "ENTRIES", "THRESHOLD", "TTL", "MAX ERROR", "HITS", "EXPLORED", "AUDITED", "WRONG (EST.)", "WRONG (BOUND)", "WHAT IT IS"]]
                    + stats.scopes.map { scope in
                        let verification = scope.verification
                        return [String(scope.scope.prefix(16)), String(scope.entries), String(format: "%.3f", scope.similarityThreshold),
                         scope.ttlSeconds.map { formatDuration($0) } ?? "never", percent(scope.maxError),
                         verification.map { String($0.hits) } ?? "-", verification.map { String($0.explorations) } ?? "-",
                         verification.map { String($0.audits) } ?? "-", percent(verification?.estimatedWrongRate),
                         percent(verification?.wrongRateUpperBound), scope.description?.description ?? "-"]
                    }))
            }
        }
    }

    struct Configure: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Set a scope's own similarity threshold, TTL and error bound.",
            discussion: "The settings given replace the scope's own ones; those not given follow the global settings.")
        @ParentCommand var group: CacheCommand
        @Option(help: "The scope.") var scope: String
        @Option(help: "Least similarity for a paraphrase to hit, 0 to 1.") var threshold: Double?
        @Option(help: "How long entries serve: e.g. 3600s, 12h, 30d; 0 for ever.") var ttl: String?
        @Option(help: "The largest share of wrong answers among paraphrase hits, strictly between 0 and 1 (e.g. 0.02).")
        var maxError: Double?
        @Flag(help: "Drop the scope's own settings: the global ones apply again.") var reset = false

        func validate() throws {
            if let threshold, !(0...1).contains(threshold) { throw ValidationError("--threshold must be between 0 and 1.") }
            if let ttl, ttl != "0", parseDuration(ttl) == nil { throw ValidationError("--ttl takes a number with a unit: s, m, h or d.") }
            if let maxError, !(maxError > 0 && maxError < 1) {
                throw ValidationError("--max-error must be strictly between 0 and 1: a share of wrong answers, e.g. 0.02 for 2%.")
            }
            guard reset != (threshold != nil || ttl != nil || maxError != nil) else {
                throw ValidationError("Give --threshold, --ttl and/or --max-error, or --reset.")
            }
        }

        func run() async throws {
            try await runCommand {
                let settings = CacheScopeSettings(
                    similarityThreshold: threshold, ttlSeconds: ttl.map { $0 == "0" ? 0 : parseDuration($0)! }, maxError: maxError)
                let info = try await group.root.client.configureCacheScope(scope, settings)
                let maxError = info.maxError.map { String(format: ", max error %.2f%%", 100 * $0) } ?? ""
                print("scope \(info.scope.prefix(16)): threshold \(String(format: "%.3f", info.similarityThreshold)), ttl \(info.ttlSeconds.map { formatDuration($0) } ?? "never")\(maxError)")
            }
        }
    }
}

/// A decoding error in a few words: which field, and what is wrong with it.
func describe(_ error: any Error) -> String {
    guard let error = error as? DecodingError else { return "\(error)" }
    func path(_ keys: [any CodingKey]) -> String { "\"" + keys.map(\.stringValue).joined(separator: ".") + "\"" }
    switch error {
    case .keyNotFound(let key, let context): return "no \(path(context.codingPath + [key]))"
    case .valueNotFound(_, let context): return "\(path(context.codingPath)) is null"
    case .typeMismatch(let type, let context): return "\(path(context.codingPath)) is not a \(type)"
    case .dataCorrupted(let context) where context.codingPath.isEmpty: return "not JSON"
    case .dataCorrupted(let context): return "\(path(context.codingPath)): \(context.debugDescription)"
    @unknown default: return "\(error)"
    }
}

/// `90s`, `30m`, `12h`, `7d` in seconds.
func parseDuration(_ text: String) -> Double? {
    let units: [Character: Double] = ["s": 1, "m": 60, "h": 3600, "d": 86400]
    guard let unit = text.last.flatMap({ units[$0] }), let value = Double(text.dropLast()), value >= 0, value.isFinite else {
        return nil
    }
    return value * unit
}

func clip(_ text: String, _ length: Int) -> String {
    let line = text.replacingOccurrences(of: "\n", with: " ")
    return line.count <= length ? line : String(line.prefix(length - 1)) + "…"
}

