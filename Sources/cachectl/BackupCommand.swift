import ArgumentParser
import Foundation

struct Backup: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a consistent copy of distilld's store (SQLite's online backup) to a file.",
        discussion: """
            distilld keeps serving while it copies; the copy holds every commit up to the moment it \
            began and passes PRAGMA integrity_check. The file appears (mode 0600: it holds prompts \
            and answers) only once it is complete and synced. Restore it by stopping distilld and \
            putting it in place of <data_dir>/distill.sqlite (docs/operations.md).
            """)

    @ParentCommand var root: Cachectl
    @Argument(help: "The file to write; it must not exist unless --force is given.") var path: String
    @Flag(help: "Replace PATH if it exists.") var force = false

    func run() async throws {
        try await runCommand {
            guard force || !FileManager.default.fileExists(atPath: path) else {
                throw CachectlError("\(path) exists (pass --force to replace it)")
            }
            let download = try await ReplacementFile.write(path) { file in
                let download = try await root.client.backup(to: file.handle)
                guard download.isComplete else {
                    throw CachectlError("the copy arrived incomplete (\(download.bytes) bytes)")
                }
                try checkSQLiteHeader(file.partial)
                return download
            }
            let rows = download.teacherLogRows.map(String.init) ?? "?"
            let entries = download.cacheEntries.map(String.init) ?? "?"
            print("backed up \(formatBytes(download.bytes)) to \(path): \(rows) teacher log rows, \(entries) cache entries")
        }
    }

    private func checkSQLiteHeader(_ file: String) throws {
        let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: file))
        defer { try? handle.close() }
        guard try handle.read(upToCount: 16) == Data("SQLite format 3\0".utf8) else {
            throw CachectlError("what arrived is not an SQLite database")
        }
    }
}
