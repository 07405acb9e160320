import DistillAPI
import DistillCore
import Foundation
import Logging
import PostgresStore
import SQLiteStore
import Storage

extension DistillConfig {
    /// `store.url` and its password and TLS: the PostgreSQL store that several nodes share.
    mutating func loadSharedStore(_ f: inout ConfigFields, defaults: DistillConfig) throws(ConfigError) {
        let url = try f.string("store.url", default: "")
        store.url = url.isEmpty ? nil : url
        store.passwordEnv = try f.string("store.password_env", default: defaults.store.passwordEnv)
        let passwordFile = try f.string("store.password_file", default: "")
        store.passwordFile = passwordFile.isEmpty ? nil : passwordFile
        store.tls = try f.string("store.tls", default: defaults.store.tls)
        let modes = PostgresStoreConfiguration.TLSMode.allCases.map(\.rawValue)
        guard modes.contains(store.tls) else {
            throw .invalidValue(key: "store.tls", value: store.tls, expected: "one of \(modes.joined(separator: ", "))")
        }
        if let url = store.url {
            do {
                _ = try PostgresStoreConfiguration(url: url, password: nil, tls: .disable)
            } catch {
                throw .invalidValue(key: "store.url", value: "(not shown)", expected: "\(error)")
            }
        }
    }
}

extension DistillConfig.Store {
    /// The PostgreSQL store's connection settings, its password read from `password_file` when
    /// set, else from the environment variable `password_env` (nil when neither has one).
    func postgresConfiguration(environment: [String: String]) throws -> PostgresStoreConfiguration? {
        guard let url else { return nil }
        var password = environment[passwordEnv]
        if let passwordFile {
            do {
                password = try String(contentsOfFile: passwordFile, encoding: .utf8).trimmingCharacters(in: .newlines)
            } catch {
                throw StoreConfigError(description: "cannot read store.password_file \(passwordFile): \(error.localizedDescription)")
            }
        }
        return try PostgresStoreConfiguration(url: url, password: password, tls: .init(rawValue: tls) ?? .prefer)
    }
}

struct StoreConfigError: Error, CustomStringConvertible {
    var description: String
}

extension DistillSystem {
    /// `distilld --import-sqlite PATH`: copies a node's SQLite store into the (empty) PostgreSQL
    /// store that `store.url` names, ids and all, in one transaction.
    public static func importSQLite(
        path: String, config: DistillConfig, environment: [String: String], logger: Logger
    ) async throws -> BackupSummary {
        guard let shared = try config.store.postgresConfiguration(environment: environment) else {
            throw StoreConfigError(description: "--import-sqlite copies into PostgreSQL: set store.url")
        }
        guard FileManager.default.fileExists(atPath: path) else {
            throw StoreConfigError(description: "no SQLite store at \(path)")
        }
        let source = try SQLiteStore(path: path)
        defer { try? source.close() }
        let target = try await PostgresStore.open(configuration: shared, logger: logger)
        defer { try? target.close() }
        return try await target.importRows(
            from: source, metadataKeys: [SemanticCache.modelKey, teacherLogModelKey],
            progress: { logger.info("importing", metadata: ["distill.progress": "\($0)"]) })
    }
}

extension DistillSystem {
    /// The nodes sharing a PostgreSQL store (nil with SQLite, or while PostgreSQL does not answer).
    func clusterStatus() async -> [DaemonStatus.ClusterNode]? {
        guard let shared = store as? PostgresStore, let nodes = try? await shared.clusterState() else { return nil }
        return nodes.map {
            .init(node: $0.node, lag: $0.lag, seenAt: $0.seenAt, connected: $0.connected, leader: $0.leader, this: $0.node == shared.nodeID)
        }
    }
}
