import Foundation
import PostgresNIO
import Storage

/// Where the PostgreSQL store is and how to reach it: `postgres://USER@HOST:PORT/DATABASE` (a
/// Unix socket's directory as `?host=/run/postgresql`), the password apart (from the environment
/// or a file, never the URL: URLs end up in argv, logs and status pages), and TLS.
public struct PostgresStoreConfiguration: Sendable {
    public enum TLSMode: String, Sendable, CaseIterable {
        /// Plain TCP.
        case disable
        /// TLS when the server offers it (unverified fallback to plain TCP otherwise).
        case prefer
        /// TLS or no connection, the server's certificate checked against the system's roots.
        case require
    }

    public var host: String
    public var port: Int
    /// The directory of the server's Unix socket, when it is reached through one.
    public var socketDirectory: String?
    public var username: String
    public var database: String
    public var password: String?
    public var tls: TLSMode
    /// Connections this node opens at most (besides the one that listens for changes).
    public var maxConnections = 16
    /// How long an operation may wait for PostgreSQL before it fails as unavailable.
    public var operationTimeout = Duration.seconds(5)
    /// The node's name on its connections (`application_name`): who is who in pg_stat_activity.
    var applicationName = "distilld"

    /// Parses `url` (`postgres://` or `postgresql://`); refuses one that holds a password.
    public init(url: String, password: String?, tls: TLSMode) throws(StoreError) {
        func invalid(_ reason: String) -> StoreError {
            .cannotOpen(path: Self.redacted(url), reason: "store.url: \(reason)")
        }
        guard let components = URLComponents(string: url), ["postgres", "postgresql"].contains(components.scheme ?? "") else {
            throw invalid("expected postgres://USER@HOST:PORT/DATABASE")
        }
        guard components.password == nil else {
            throw invalid("it holds a password: set it in the environment (store.password_env) or a file (store.password_file) instead")
        }
        let query = Dictionary((components.queryItems ?? []).map { ($0.name, $0.value ?? "") }, uniquingKeysWith: { $1 })
        socketDirectory = query["host"].flatMap { $0.hasPrefix("/") ? $0 : nil }
        host = components.host.flatMap { $0.isEmpty ? nil : $0 } ?? (socketDirectory == nil ? "localhost" : "")
        port = components.port ?? 5432
        guard let user = components.user, !user.isEmpty else { throw invalid("no user name (postgres://USER@HOST/DATABASE)") }
        username = user
        let path = components.path.hasPrefix("/") ? String(components.path.dropFirst()) : components.path
        database = path.isEmpty ? user : path
        if let unknown = query.keys.first(where: { $0 != "host" }) {
            throw invalid("unknown parameter \(unknown) (TLS is store.tls)")
        }
        self.password = password
        self.tls = tls
    }

    /// The URL without secrets, as an operator would name the store.
    public var location: String {
        let address = socketDirectory.map { "@/\(database)?host=\($0)" } ?? "@\(host):\(port)/\(database)"
        return "postgres://\(username)\(address)"
    }

    /// `url` with any password replaced, for an error message.
    static func redacted(_ url: String) -> String {
        guard var components = URLComponents(string: url), components.password != nil else { return url }
        components.password = "***"
        return components.string ?? "(unparsable URL)"
    }

    var clientConfiguration: PostgresClient.Configuration {
        var configuration: PostgresClient.Configuration
        if let socketDirectory {
            configuration = .init(
                unixSocketPath: socketPath(in: socketDirectory), username: username, password: password, database: database)
        } else {
            let tls: PostgresClient.Configuration.TLS =
                switch self.tls {
                case .disable: .disable
                case .prefer: .prefer(Self.unverified)
                case .require: .require(.makeClientConfiguration())
                }
            configuration = .init(host: host, port: port, username: username, password: password, database: database, tls: tls)
        }
        configuration.options.maximumConnections = maxConnections
        configuration.options.connectTimeout = .seconds(5)
        configuration.options.additionalStartupParameters = [("application_name", applicationName)]
        return configuration
    }

    var connectionConfiguration: PostgresConnection.Configuration {
        get throws {
            if let socketDirectory {
                var configuration = PostgresConnection.Configuration(
                    unixSocketPath: socketPath(in: socketDirectory), username: username, password: password, database: database)
                configuration.options.additionalStartupParameters = [("application_name", applicationName)]
                return configuration
            }
            let tls: PostgresConnection.Configuration.TLS =
                switch self.tls {
                case .disable: .disable
                case .prefer: .prefer(try NIOSSLContext(configuration: Self.unverified))
                case .require: .require(try NIOSSLContext(configuration: .makeClientConfiguration()))
                }
            var configuration = PostgresConnection.Configuration(
                host: host, port: port, username: username, password: password, database: database, tls: tls)
            configuration.options.connectTimeout = .seconds(5)
            configuration.options.additionalStartupParameters = [("application_name", applicationName)]
            return configuration
        }
    }

    /// `prefer` takes whatever the server offers, as libpq's `sslmode=prefer` does: it guards
    /// against eavesdropping, not against an impostor (`require` does both).
    private static var unverified: TLSConfiguration {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.certificateVerification = .none
        return configuration
    }

    private func socketPath(in directory: String) -> String {
        (directory as NSString).appendingPathComponent(".s.PGSQL.\(port)")
    }
}
