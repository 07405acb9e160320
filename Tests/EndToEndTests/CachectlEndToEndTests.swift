import DistillAPI
import DistillClient
import Foundation
import Testing

/// cachectl as an operator meets it: what its files hold after a failure, and what its errors
/// and exit codes say.
@Suite(.timeLimit(.minutes(2)))
struct CachectlEndToEndTests {
    static func mode(_ path: String) throws -> Int? {
        (try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? NSNumber)?.intValue
    }

    @Test func anExportReplacesItsFileOnlyOnceComplete() async throws {
        let world = try await EndToEnd.World.start()
        do {
            for sample in EndToEnd.samples.prefix(2) { _ = try await world.client().complete(EndToEnd.request(sample.query)) }
            let log = world.directory.appendingPathComponent("exports/teacher-log.jsonl").path
            let cache = world.directory.appendingPathComponent("exports/cache.jsonl").path
            try FileManager.default.createDirectory(atPath: (log as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            // A previous export, readable by others as files used to be.
            for path in [log, cache] {
                #expect(FileManager.default.createFile(atPath: path, contents: Data("an older export\n".utf8), attributes: [.posixPermissions: 0o644]))
            }

            #expect(try await world.cachectl(["teacher-log", "export", "--output", log]).status == 0)
            #expect(try await world.cachectl(["cache", "export", "--file", cache]).status == 0)
            let exported = try [log, cache].map { try String(contentsOfFile: $0, encoding: .utf8) }
            #expect(exported.map { $0.split(separator: "\n").count } == [2, 2], "the new export replaced the old")
            #expect(try [log, cache].map(Self.mode) == [0o600, 0o600], "exports hold prompts")

            // distilld is down: the exports fail, and the files keep the last good export.
            world.daemon.signal(SIGTERM)
            #expect(await world.daemon.exitStatus() == 0)
            let failedLog = try await world.cachectl(["teacher-log", "export", "--output", log])
            let failedCache = try await world.cachectl(["cache", "export", "--file", cache])
            #expect(failedLog.status == 2 && failedCache.status == 2, "\(failedLog.stderr) \(failedCache.stderr)")
            #expect(try [log, cache].map { try String(contentsOfFile: $0, encoding: .utf8) } == exported)
            let left = try FileManager.default.contentsOfDirectory(atPath: (log as NSString).deletingLastPathComponent)
            #expect(left.sorted() == ["cache.jsonl", "teacher-log.jsonl"], "no partial file is left")
        } catch {
            Issue.record("distilld stderr:\n\(world.daemon.stderr.suffix(3000))")
            await world.stop()
            throw error
        }
        await world.stop()
    }

    @Test func errorsSayWhereTheyComeFromAndExitAsDocumented() async throws {
        let world = try await EndToEnd.World.start()
        do {
            _ = try await world.client().complete(EndToEnd.request(EndToEnd.sample.query))
            func cachectl(_ arguments: [String]) async throws -> (status: Int32, stdout: String, stderr: String) {
                try await runToCompletion("cachectl", arguments, in: world.directory)
            }
            let help = try await cachectl(["--help"])
            #expect(help.stdout.contains("64  usage error"), "the exit codes are documented")

            // Usage errors: 64, before anything is sent.
            #expect(try await world.cachectl(["cache", "search", " "]).status == 64)
            #expect(try await world.cachectl(["cache", "purge"]).status == 64)
            #expect(try await cachectl(["--url", "127.0.0.1:8080", "status"]).status == 64)

            // TCP to a distilld without admin.token: it has no admin API there, and cachectl says so.
            let overTCP = try await cachectl(["--url", world.http, "status"])
            #expect(overTCP.status == 1)
            #expect(overTCP.stderr.contains("no admin.token configured"), "\(overTCP.stderr)")

            // This side's failures are not blamed on distilld.
            let unwritable = try await world.cachectl(["cache", "export", "--file", "/nonexistent/dir/cache.jsonl"])
            #expect(unwritable.status == 1 && unwritable.stderr.hasPrefix("cachectl: cannot create /nonexistent/dir/cache.jsonl.partial"))
            #expect(!unwritable.stderr.contains("distilld"), "\(unwritable.stderr)")
            let unreadable = try await world.cachectl(["cache", "import", "/nonexistent.jsonl"])
            #expect(unreadable.status == 1 && unreadable.stderr == "cachectl: cannot read /nonexistent.jsonl: No such file or directory\n")

            // A bad line: one line naming it, and nothing imported.
            let export = try await world.cachectl(["cache", "export"])
            let good = try #require(export.stdout.split(separator: "\n").first)
            let file = world.directory.appendingPathComponent("import.jsonl").path
            try Data((["", String(good), #"{"scope": 1}"#, String(good)].joined(separator: "\n")).utf8).write(to: URL(fileURLWithPath: file))
            _ = try await world.socketClient.purgeCache(CachePurgeRequest(scope: nil, olderThanSeconds: nil))
            let bad = try await world.cachectl(["cache", "import", file])
            #expect(bad.status == 1)
            #expect(bad.stderr == "cachectl: \(file):3: not a cache export line: \"scope\" is not a String\n")
            #expect(try await world.socketClient.cacheStats().entries == 0, "a bad line imports nothing")
        } catch {
            Issue.record("distilld stderr:\n\(world.daemon.stderr.suffix(3000))")
            await world.stop()
            throw error
        }
        await world.stop()
    }
}
