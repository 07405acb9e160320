import Foundation
import SQLiteStore
import Storage
import StoreConformance
import Testing

/// The behaviour every store shares (Tests/StoreConformance), on a new SQLite database each.
@Suite struct SQLiteConformanceTests {
    @Test(arguments: StoreCase.all) func conforms(_ storeCase: StoreCase) async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("distill-conformance-\(UUID().uuidString)")
        let store = try SQLiteStore(path: directory.appendingPathComponent("distill.sqlite").path)
        try await storeCase.check(store)
        try store.close()
        try FileManager.default.removeItem(at: directory)
    }
}
