import ChildProcess
import Foundation
import Logging
import PostgresStore
import Storage

/// Stores on the test process's scratch PostgreSQL server, each test with a database of its own.
enum Server {
    /// A new, empty database's configuration. These tests are about what the store does, not how
    /// fast: on a loaded 2-core machine twenty writers queued on the feed's lock can outwait the
    /// daemon's 5 s default, so the tests allow a minute.
    static func configuration() async throws -> PostgresStoreConfiguration {
        let url = try await ScratchPostgres.shared().createDatabase()
        var configuration = try PostgresStoreConfiguration(url: url, password: ScratchPostgres.password, tls: .disable)
        configuration.operationTimeout = .seconds(60)
        return configuration
    }

    static func open(_ configuration: PostgresStoreConfiguration) async throws -> PostgresStore {
        try await PostgresStore.open(configuration: configuration, logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
    }
}

let serverAvailable = ScratchPostgres.binDirectory != nil
