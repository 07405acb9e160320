import Foundation

/// What the domain needs of a store: the teacher log, the cache entries and their index snapshots,
/// per-scope settings, the student versions, and word of new teacher answers. `SQLiteStore` is the
/// embedded implementation; a store shared by several nodes implements the same protocol.
///
/// Every method that returns has committed (or read) durably: in particular, when
/// `appendTeacherExchange` returns, the exchange survives a crash.
public protocol DistillStore: Sendable {
    /// Where the store is, as an operator would name it (a path, a URL without credentials).
    var location: String { get }
    /// Bytes the store takes, where it can tell.
    var sizeOnDisk: Int64? { get }
    /// Fails unless the store answers a trivial query.
    func checkHealth() async throws
    /// Finishes pending work and closes every connection.
    func close() throws
    /// A consistent copy of the whole store in a new file at `path`, checked.
    func backup(to path: String) async throws(StoreError) -> BackupSummary

    // MARK: Teacher log

    /// Commits one teacher exchange and, with it, the cache entry for its answer (replacing the
    /// scope's entry with the same exact key).
    func appendTeacherExchange(_ exchange: TeacherLogRecord, cacheEntry: CacheEntryRecord?) async throws -> TeacherExchangeCommit
    /// Rows after `id`, oldest first.
    func teacherLog(after id: Int64, limit: Int) async throws -> [TeacherLogRecord]
    func teacherLogCount() async throws -> Int64
    /// A scope's rows after `id`, oldest first.
    func teacherLog(scope: String, after id: Int64, limit: Int) async throws -> [TeacherLogRecord]
    /// A scope's newest `limit` rows, oldest first.
    func latestTeacherLog(scope: String, limit: Int) async throws -> [TeacherLogRecord]
    /// Yields after commits that changed the teacher log (a burst may yield once), until dropped.
    func teacherLogCommits() -> AsyncStream<Void>
    /// Per scope: the rows logged after the newest one a stored student version was trained
    /// through (all of them without a version), and whether it has a version.
    func untrainedTeacherLog() async throws -> [String: (count: Int, trained: Bool)]
    /// Per scope with rows after `id`: how many, and the newest id.
    func teacherLogActivity(after id: Int64) async throws -> [String: (count: Int, newest: Int64)]
    func setTeacherLogEmbeddings(_ vectors: [(id: Int64, vector: [Float])]) async throws
    func clearTeacherLogEmbeddings() async throws
    /// Deletes the exchanges created before `date` (of one scope, or all): per scope, how many, and
    /// the oldest id among them. Cache entries made from them stay (they lose the link).
    func purgeTeacherLog(scope: String?, createdBefore date: Date) async throws -> [String: (count: Int, oldestID: Int64)]

    // MARK: Cache entries

    /// Inserts entries (each replacing its scope's entry with the same exact key); their ids, and the replaced ones'.
    func insertCacheEntries(_ entries: [CacheEntryRecord]) async throws -> [(id: Int64, replaced: Int64?)]
    func cacheEntry(id: Int64) async throws -> CacheEntryRecord?
    func cacheEntryKeys() async throws -> [CacheEntryKey]
    /// Entry counts by scope.
    func cacheScopes() async throws -> [String: Int]
    /// The vectors of a scope's entries above `id`, in id order. Here and below, entries without a
    /// vector (only an exact hit serves them) are left out.
    func cacheVectors(scope: String, after id: Int64) async throws -> [(id: Int64, vector: [Float])]
    func indexedCacheEntryIDs(scope: String) async throws -> Set<Int64>
    func cacheVectors(ids: Set<Int64>) async throws -> [(id: Int64, vector: [Float])]
    /// Entries after `id` (of one scope, or all), by id.
    func cacheEntries(scope: String?, after id: Int64, limit: Int) async throws -> [CacheEntryRecord]
    func cacheEntryCount() async throws -> Int
    func deleteCacheEntries(ids: [Int64]) async throws -> [CacheEntryKey]
    func purgeCacheEntries(scope: String?, createdBefore date: Date?) async throws -> [CacheEntryKey]
    /// At most `limit` entries expired at `now`, deleted.
    func deleteExpiredCacheEntries(now: Date, limit: Int) async throws -> [CacheEntryKey]
    /// The `count` least recently used entries, deleted.
    func evictLeastRecentlyUsed(count: Int) async throws -> [CacheEntryKey]
    func recordCacheHits(_ hits: [Int64: (count: Int, last: Date)]) async throws
    func replaceCacheVectors(_ vectors: [(id: Int64, vector: [Float])]) async throws

    // MARK: Index snapshots

    func saveIndexSnapshot(scope: String, watermark: Int64, bytes: [UInt8]) async throws
    func indexSnapshot(scope: String) async throws -> (watermark: Int64, bytes: [UInt8])?
    func deleteIndexSnapshots() async throws

    // MARK: Scope settings and metadata

    func scopeSettings() async throws -> [String: (similarityThreshold: Double?, ttlSeconds: Double?)]
    /// Sets what an operator set for `scope` (`cachectl cache configure`): its threshold and TTL
    /// (`scopeSettings`) and its error bound (`scopeMaxErrors`), each nil where the global setting
    /// holds; and every entry of the scope expires `entryLifetime` after it was created (never when
    /// nil). One transaction: a crash leaves all of it set or none.
    func configureScope(_ scope: String, _ overrides: ScopeOverrides, entryLifetime: Double?) async throws
    func metadata(_ key: String) async throws -> String?
    func setMetadata(_ key: String, _ value: String) async throws

    // MARK: Cache verification

    /// Each scope's own error bound δ (`cache.max_error`), where an operator set one.
    func scopeMaxErrors() async throws -> [String: Double]
    /// Everything the verified cache has learned: its scopes' beliefs and its entries'.
    func cacheBeliefs() async throws -> [CacheBeliefRecord]
    /// Merges beliefs into the stored ones, one merge at a time across every node of the store:
    /// passes `merge` the stored beliefs of `scopes` and `entries` (those stored), and writes the
    /// beliefs it returns, each replacing the stored one of its scope or entry; returns them. An
    /// entry's belief whose entry is gone is dropped; an entry's belief goes when its entry does.
    func mergeCacheBeliefs(
        scopes: Set<String>, entries: Set<Int64>, _ merge: @escaping @Sendable ([CacheBeliefRecord]) throws -> [CacheBeliefRecord]
    ) async throws -> [CacheBeliefRecord]

    // MARK: Student versions

    /// Stores a version; an active one retires its scope's previous active version in the same commit.
    func addStudentVersion(_ version: StudentVersionRecord) async throws -> Int64
    /// Makes a version its scope's active one (the previous one retires) in one commit.
    func activateStudentVersion(id: Int64) async throws
    func setStudentVersionStatus(id: Int64, _ status: StudentVersionRecord.Status) async throws
    func studentVersion(id: Int64) async throws -> StudentVersionRecord?
    /// Each scope's active or suspended version.
    func currentStudentVersions() async throws -> [StudentVersionRecord]
    /// Versions, newest first.
    func studentVersions(scope: String?) async throws -> [StudentVersionRecord]
}

extension DistillStore {
    /// Commits one teacher exchange without a cache entry; its id.
    @discardableResult
    public func appendTeacherExchange(_ exchange: TeacherLogRecord) async throws -> Int64 {
        try await appendTeacherExchange(exchange, cacheEntry: nil).logID
    }

    public func teacherLog(scope: String) async throws -> [TeacherLogRecord] {
        try await teacherLog(scope: scope, after: 0, limit: .max)
    }

    public func teacherLogActivity() async throws -> [String: (count: Int, newest: Int64)] {
        try await teacherLogActivity(after: 0)
    }

    public func cacheVectors(scope: String) async throws -> [(id: Int64, vector: [Float])] {
        try await cacheVectors(scope: scope, after: 0)
    }

    /// Writes beliefs, each replacing the stored one of its scope or entry (`mergeCacheBeliefs`).
    public func saveCacheBeliefs(_ beliefs: [CacheBeliefRecord]) async throws {
        guard !beliefs.isEmpty else { return }
        _ = try await mergeCacheBeliefs(scopes: [], entries: []) { _ in beliefs }
    }
}
