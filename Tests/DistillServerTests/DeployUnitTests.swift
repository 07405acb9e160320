import Foundation
import Testing

@testable import DistillServer
import DistillCore

/// deploy/distilld.service, read as systemd would start distilld with it and the shipped config.
@Suite struct DeployUnitTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..").standardized

    @Test func everyPathTheDaemonUsesUnderSystemdIsAbsolute() async throws {
        let unit = try String(contentsOf: Self.root.appendingPathComponent("deploy/distilld.service"), encoding: .utf8)
            .replacingOccurrences(of: "\\\n", with: " ")
        var environment: [String: String] = [:]
        for line in unit.split(separator: "\n") where line.hasPrefix("Environment=") {
            let assignment = line.dropFirst("Environment=".count).split(separator: "=", maxSplits: 1)
            environment[String(assignment[0])] = String(assignment[1])
        }
        let exec = try #require(unit.split(separator: "\n").first { $0.hasPrefix("ExecStart=") }).split(separator: " ").map(String.init)
        func flag(_ name: String) -> String? { exec.firstIndex(of: name).map { exec[$0 + 1] } }
        var overrides: [String: String] = [:]
        overrides["store.data_dir"] = flag("--data-dir")
        overrides["server.socket"] = flag("--socket")

        // Refused if any of the unit's DISTILL_ variables named no key.
        let loaded = try await DistillConfig.load(
            file: Self.root.appendingPathComponent("config/distilld.yaml").path, environment: environment, overrides: overrides)
        // systemd starts the daemon in WorkingDirectory; a relative path would depend on it.
        for path in [loaded.config.embedding.modelDir, loaded.config.store.dataDir, loaded.config.server.socket ?? "/"] {
            #expect(path.hasPrefix("/"), "\(path) is relative")
        }
        #expect(loaded.config.embedding.modelDir == "/usr/local/share/distill/all-MiniLM-L6-v2")
    }
}
