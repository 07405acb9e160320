import ChildProcess
import Foundation
import Logging
import PostgresStore
import Storage

/// Stores on the test process's scratch PostgreSQL server, each test with a database of its own.
enum Server {
    /// A new, empty database's configuration.
    static func configuration() async throws -> PostgresStoreConfiguration {
        let url = try await ScratchPostgres.shared().createDatabase()
        return try PostgresStoreConfiguration(url: url, password: ScratchPostgres.password, tls: .disable)
    }

    static func open(_ configuration: PostgresStoreConfiguration) async throws -> PostgresStore {
        try await PostgresStore.open(configuration: configuration, logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
    }
}

let serverAvailable = ScratchPostgres.binDirectory != nil
