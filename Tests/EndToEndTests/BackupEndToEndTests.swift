import DistillAPI
import Foundation
import Testing

/// `cachectl backup` against a running distilld, and a restore from its file.
@Suite(.timeLimit(.minutes(2)))
struct BackupEndToEndTests {
    @Test func aBackupMadeWhileServingRestoresEveryAnswerItHolds() async throws {
        let world = try await EndToEnd.World.start()
        var restored = try await EndToEnd.World.start()
        do {
            let client = world.client()
            for sample in EndToEnd.samples.prefix(3) {
                _ = try await client.complete(EndToEnd.request(sample.query))
            }
            let file = world.directory.appendingPathComponent("backups/distill-1.sqlite").path
            try FileManager.default.createDirectory(atPath: (file as NSString).deletingLastPathComponent, withIntermediateDirectories: true)

            // The daemon keeps answering while the copy is made.
            async let backup = world.cachectl(["backup", file])
            for sample in EndToEnd.samples[3..<8] {
                _ = try await client.complete(EndToEnd.request(sample.query))
            }
            let made = try await backup
            #expect(made.status == 0)
            #expect(made.stdout.contains("teacher log rows"), "\(made.stdout)")
            let mode = try FileManager.default.attributesOfItem(atPath: file)[.posixPermissions] as? NSNumber
            #expect(mode?.intValue == 0o600, "the copy holds prompts and answers")
            #expect(!FileManager.default.fileExists(atPath: file + ".partial"))
            let leftovers = try FileManager.default.contentsOfDirectory(atPath: world.directory.appendingPathComponent("data").path)
            #expect(!leftovers.contains { $0.hasPrefix("backup-") }, "the daemon's own copy is gone: \(leftovers)")
            #expect(try await world.cachectl(["backup", file]).status == 1, "an existing file is not replaced without --force")
            let rows = Int(made.stdout.components(separatedBy: ": ").last?.split(separator: " ").first ?? "") ?? 0
            #expect((3...8).contains(rows), "\(made.stdout)")

            // Restore into another daemon: stop it, put the copy in place, start it again.
            restored.daemon.signal(SIGTERM)
            #expect(await restored.daemon.exitStatus() == 0)
            let data = restored.directory.appendingPathComponent("data")
            for suffix in ["", "-wal", "-shm"] {
                try? FileManager.default.removeItem(at: data.appendingPathComponent("distill.sqlite" + suffix))
            }
            try FileManager.default.copyItem(atPath: file, toPath: data.appendingPathComponent("distill.sqlite").path)
            try await restored.startDaemon()
            let export = try await restored.cachectl(["teacher-log", "export"])
            #expect(export.stdout.split(separator: "\n").count == rows)
            let again = try await restored.client().complete(EndToEnd.request(EndToEnd.samples[0].query))
            #expect(again.info.source == .cache, "the restored cache answers")
        } catch {
            Issue.record("distilld stderr:\n\(world.daemon.stderr.suffix(3000))")
            await world.stop()
            await restored.stop()
            throw error
        }
        await world.stop()
        await restored.stop()
    }
}
