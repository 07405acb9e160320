import ChildProcess
import Foundation
import PostgresStore
import Storage
import StoreConformance
import Testing

/// The behaviour every store shares (Tests/StoreConformance), on a new PostgreSQL database each.
@Suite(.enabled(if: serverAvailable, Comment(rawValue: ScratchPostgres.missingMessage)))
struct PostgresConformanceTests {
    @Test(arguments: StoreCase.all) func conforms(_ storeCase: StoreCase) async throws {
        let store = try await Server.open(try await Server.configuration())
        try await storeCase.check(store)
        try store.close()
    }
}
