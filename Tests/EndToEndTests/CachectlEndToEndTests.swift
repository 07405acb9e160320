import Foundation
import Testing

/// cachectl as an operator meets it: what its files hold after a failure.
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
}
