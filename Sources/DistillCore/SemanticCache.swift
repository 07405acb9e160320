import CacheVerification
import DistillAPI
import Embedding
import Foundation
import Logging
import Storage
import Synchronization
import VectorIndex

/// A cached answer that serves a request.
public struct CacheHit: Sendable {
    public enum Kind: String, Sendable {
        /// The same last user message (normalized).
        case exact
        /// A paraphrase at least as similar as the scope's threshold.
        case semantic
    }

    public var entryID: Int64
    public var answer: String
    public var finishReason: String
    public var kind: Kind
    /// Cosine similarity of the request's message to the entry's (1 for an exact hit).
    public var similarity: Float
}

/// The semantic cache: per scope, a map from normalized last user message to entry (exact hits)
/// and a vector index over the messages' embeddings (paraphrases). SQLite holds the entries; the
/// maps and indexes are rebuilt from it (or from index snapshots) at start-up.
///
/// Scopes are hard partitions: a lookup only ever consults its own scope's map and index.
///
/// A paraphrase is served only when `CacheVerifier` estimates that its answer is wrong with a
/// probability within the scope's bound δ (`maxError`); it learns from the teacher's answers to the
/// lookups it did not serve (`learn`), and its beliefs are written with the hit counts.
public final class SemanticCache: Sendable {
    /// The settings in force in a scope: the global default or the scope's override.
    public struct ScopeSettings: Sendable, Equatable {
        public var similarityThreshold: Double
        /// nil: entries never expire.
        public var ttlSeconds: Double?
        /// δ: the largest share of wrong answers among the scope's paraphrase hits.
        public var maxError: Double
    }

    let store: any DistillStore
    /// Embeds what an operator searches for, and imported prompts of another model.
    let embedder: any Embedder
    let clock: any WallClock
    let defaults: ScopeSettings
    let maxEntries: Int
    let indexConfiguration: IndexConfiguration
    let exploreShare: Double
    let metrics: any DomainMetrics
    /// Of the nodes sharing a store, the leader evicts for all.
    let leadership: Leadership
    let logger: Logger
    private let state: Mutex<State>

    private struct State {
        var exact: [String: [String: Int64]] = [:]
        var hot: HotAnswers
        var indexes: [String: ScopeIndex] = [:]
        var overrides: [String: (similarityThreshold: Double?, ttlSeconds: Double?)] = [:]
        var maxErrors: [String: Double] = [:]
        var beliefs = Beliefs()
        var verifiers: [CacheVerifier.Configuration: CacheVerifier] = [:]
        var pendingHits: [Int64: (count: Int, last: Date)] = [:]
        var count = 0
        /// An eviction is under way (`evictIfOverCapacity`).
        var evicting = false
        /// Scopes whose index changed since its last snapshot.
        var changedScopes: Set<String> = []

        /// The answer of entry `id` if it is held in memory: nil when it is not held (`isHeld`
        /// false) or has expired (`isHeld` true).
        mutating func heldAnswer(id: Int64, now: Date) -> (answer: HotAnswers.Answer?, isHeld: Bool) {
            guard let answer = hot.answer(for: id) else { return (nil, false) }
            guard !answer.hasExpired(now) else { return (nil, true) }
            return (answer, true)
        }

        /// Hits are written in batches (`flushHits`), not one by one.
        mutating func countHit(_ id: Int64, at now: Date) {
            let previous = pendingHits[id]
            pendingHits[id] = ((previous?.count ?? 0) + 1, now)
        }
    }

    /// The metadata key of the embedding model the stored vectors belong to.
    public static let modelKey = "embedding_model"

    init(
        store: any DistillStore, settings: CacheSettings, index: IndexSettings, embedder: any Embedder,
        clock: any WallClock, metrics: any DomainMetrics, leadership: Leadership = Leadership(), logger: Logger
    ) {
        self.store = store
        self.leadership = leadership
        self.embedder = embedder
        let model = embedder.identity
        self.clock = clock
        self.defaults = ScopeSettings(
            similarityThreshold: settings.similarityThreshold, ttlSeconds: settings.ttlSeconds > 0 ? settings.ttlSeconds : nil,
            maxError: settings.maxError)
        self.exploreShare = settings.exploreShare
        self.maxEntries = settings.maxEntries
        self.state = Mutex(State(hot: HotAnswers(capacityBytes: settings.hotAnswerBytes)))
        self.indexConfiguration = IndexConfiguration(
            model: model.key, dimension: model.dimension,
            hnsw: HNSWParameters(m: index.m, efConstruction: index.efConstruction, efSearch: index.efSearch),
            promotionThreshold: index.flatUntil)
        self.metrics = metrics
        self.logger = logger
    }

    /// Opens the cache over `store`: re-embeds the stored prompts if they were embedded by another
    /// model, then loads every scope's index (from its snapshot, or rebuilt from the vectors).
    public static func open(
        store: any DistillStore, settings: CacheSettings, index: IndexSettings, embedder: any Embedder,
        clock: any WallClock, metrics: any DomainMetrics, leadership: Leadership = Leadership(), logger: Logger
    ) async throws -> SemanticCache {
        let cache = SemanticCache(
            store: store, settings: settings, index: index, embedder: embedder, clock: clock, metrics: metrics,
            leadership: leadership, logger: logger)
        let model = cache.indexConfiguration.model
        if let stored = try await store.metadata(modelKey), stored != model {
            try await cache.reembed(with: embedder, from: stored)
        }
        try await store.setMetadata(modelKey, model)
        try await cache.load()
        return cache
    }

    // MARK: - Lookups

    /// What memory says of exactly this (normalized) message in `scope`.
    public enum ExactLookup {
        /// Its answer is held and has not expired.
        case held(CacheHit)
        /// There is an entry, whose answer is not held: `storedExactHit` reads it.
        case stored(entryID: Int64)
        /// There is no entry, or it has expired.
        case none
    }

    /// Looks the message up without suspending; a hit is counted only once it is served (`countHit`).
    public func exactLookup(scope: Scope, key: String, now: Date) -> ExactLookup {
        state.withLock { state in
            guard let id = state.exact[scope.key]?[key] else { return .none }
            let (answer, isHeld) = state.heldAnswer(id: id, now: now)
            guard isHeld else { return .stored(entryID: id) }
            guard let answer else { return .none }
            return .held(CacheHit(entryID: id, answer: answer.text, finishReason: answer.finishReason, kind: .exact, similarity: 1))
        }
    }

    /// The exact hit of entry `id`, read from the store (and held from then on), if it is live.
    public func storedExactHit(id: Int64, now: Date) async throws -> CacheHit? {
        guard let answer = try await storedAnswer(id: id, now: now) else { return nil }
        return CacheHit(entryID: id, answer: answer.text, finishReason: answer.finishReason, kind: .exact, similarity: 1)
    }

    /// Counts a served hit on entry `id` (written with the others by `flushHits`).
    public func countHit(_ id: Int64, now: Date) {
        state.withLock { $0.countHit(id, at: now) }
    }

    /// The nearest live entry in `scope`, served when it is at least as similar as the scope's
    /// threshold and the verifier allows it; otherwise what the teacher's answer will teach (when
    /// there was a candidate), with the best similarity seen (nil when the scope is empty).
    public func semanticHit(scope: Scope, prompt: String, vector: [Float], now: Date) async throws -> SemanticLookup {
        guard let index = state.withLock({ $0.indexes[scope.key] }) else { return SemanticLookup(best: nil) }
        let settings = settings(for: scope.key)
        let neighbours = index.search(vector, k: 4)
        var live: [(id: Int64, similarity: Float, answer: HotAnswers.Answer)] = []
        for neighbour in neighbours {
            let (held, isHeld) = state.withLock { $0.heldAnswer(id: neighbour.id, now: now) }
            if let answer = isHeld ? held : try await storedAnswer(id: neighbour.id, now: now) {
                live.append((neighbour.id, neighbour.similarity, answer))
            }
        }
        let best = neighbours.first?.similarity
        let nearest = live.first.flatMap { $0.similarity >= Float(settings.similarityThreshold) ? $0 : nil }
        let candidate = nearest.map { nearest in
            Candidate(
                similarity: nearest.similarity, runnerUpSimilarity: CacheVerifier.runnerUp(live.map { ($0.similarity, $0.answer.text) }),
                query: TextSignature(prompt), cached: promptSignature(id: nearest.id, answer: nearest.answer))
        }
        let verifier = verifier(settings)
        // Audits are picked by content, from the top of the unit interval: the student's come from its bottom.
        let draw = 1 - Students.auditKey(vector)
        let verdict = state.withLock { state in
            var belief = state.beliefs.scopes[scope.key] ?? verifier.newScope()
            let entry = nearest.flatMap { state.beliefs.entries[$0.id]?.belief } ?? verifier.newEntry()
            let verdict = verifier.decide(candidate, scope: &belief, entry: entry, draw: draw)
            state.beliefs.set(belief, scope: scope.key)
            if verdict.decision == .serve, let nearest { state.countHit(nearest.id, at: now) }
            return (verdict: verdict, rate: belief.wrongHitRate)
        }
        metrics.recordCacheVerification(scope: scope.key, decision: Self.metricDecision(verdict.verdict), wrongHitRate: verdict.rate)
        guard let nearest else { return SemanticLookup(best: best) }
        let hit = CacheHit(
            entryID: nearest.id, answer: nearest.answer.text, finishReason: nearest.answer.finishReason, kind: .semantic,
            similarity: nearest.similarity)
        if verdict.verdict.decision == .serve { return SemanticLookup(hit: hit, best: best) }
        let lesson = verdict.verdict.teaches ? CacheLesson(scope: scope.key, candidate: hit, verdict: verdict.verdict) : nil
        return SemanticLookup(best: best, lesson: lesson)
    }

    /// The signature of entry `id`'s prompt: computed on the entry's first lookup as a candidate,
    /// then held with its answer (computed on every lookup, it was a quarter of a semantic hit's CPU).
    private func promptSignature(id: Int64, answer: HotAnswers.Answer) -> TextSignature {
        if let signature = answer.signature { return signature }
        let signature = TextSignature(answer.prompt)
        state.withLock { $0.hot.setSignature(signature, for: id) }
        return signature
    }

    /// What is held in memory for entry `id`, if anything.
    func heldAnswer(id: Int64) -> HotAnswers.Answer? { state.withLock { $0.hot.answer(for: id) } }

    /// The answer of entry `id` read from the store, if it is still there and live; held in memory
    /// from then on.
    private func storedAnswer(id: Int64, now: Date) async throws -> HotAnswers.Answer? {
        guard let entry = try await store.cacheEntry(id: id) else { return nil }
        let answer = HotAnswers.Answer(
            text: entry.answer, finishReason: entry.finishReason, expiresAt: entry.expiresAt, prompt: entry.prompt)
        return state.withLock { state in
            // Deleted while it was being read: not held, or it would outlive its entry.
            guard state.exact[entry.scope]?[entry.exactKey] == id else { return nil }
            state.hot.insert(answer, for: id)
            return answer.hasExpired(now) ? nil : answer
        }
    }

    /// The settings in force in `scope`.
    public func settings(for scope: String) -> ScopeSettings {
        let (override, maxError) = state.withLock { ($0.overrides[scope], $0.maxErrors[scope]) }
        return inForce(
            ScopeOverrides(similarityThreshold: override?.similarityThreshold, ttlSeconds: override?.ttlSeconds, maxError: maxError))
    }

    /// The settings in force in a scope with these overrides.
    private func inForce(_ overrides: ScopeOverrides) -> ScopeSettings {
        ScopeSettings(
            similarityThreshold: overrides.similarityThreshold ?? defaults.similarityThreshold,
            ttlSeconds: overrides.ttlSeconds.map { $0 > 0 ? $0 : nil } ?? defaults.ttlSeconds,
            maxError: overrides.maxError ?? defaults.maxError)
    }

    /// Replaces a scope's own settings (nil: the global one); `maxError` must be in (0, 1). The TTL
    /// in force governs the entries already cached too: each expires that long after it was created.
    public func configure(scope: String, similarityThreshold: Double?, ttlSeconds: Double?, maxError: Double?) async throws {
        let overrides = ScopeOverrides(similarityThreshold: similarityThreshold, ttlSeconds: ttlSeconds, maxError: maxError)
        try await store.configureScope(scope, overrides, entryLifetime: inForce(overrides).ttlSeconds)
        state.withLock { state in
            state.overrides[scope] = similarityThreshold == nil && ttlSeconds == nil ? nil : (similarityThreshold, ttlSeconds)
            state.maxErrors[scope] = maxError
        }
        // Held answers carry the old expiry: the next hit reads the new one from the store.
        state.withLock { state in
            for id in state.exact[scope]?.values.map(\.self) ?? [] { state.hot.remove(id) }
        }
    }

    // MARK: - Writing

    /// The entry to commit with a teacher answer; without a vector, only an exact hit may serve it.
    public func makeEntry(
        scope: Scope, request: ChatRequest, prompt: String, answer: String, finishReason: String, vector: [Float]?,
        now: Date
    ) -> CacheEntryRecord {
        CacheEntryRecord(
            scope: scope.key, exactKey: Self.exactKey(prompt), prompt: prompt,
            messages: JSONValue.array(request.messages.map(\.raw)).encodedString, answer: answer,
            finishReason: finishReason, vector: vector, createdAt: now,
            expiresAt: settings(for: scope.key).ttlSeconds.map { now.addingTimeInterval($0) })
    }

    /// Brings the maps and indexes in line with a committed entry (which replaced the entry
    /// `replaced`, if any), then evicts if over capacity.
    public func didCommit(entryID id: Int64, replacing replaced: Int64?, entry: CacheEntryRecord) async {
        let index = state.withLock { state -> ScopeIndex in
            state.exact[entry.scope, default: [:]][entry.exactKey] = id
            if let replaced { state.hot.remove(replaced) }
            if replaced == nil { state.count += 1 }
            state.changedScopes.insert(entry.scope)
            if let index = state.indexes[entry.scope] { return index }
            let index = ScopeIndex(configuration: indexConfiguration)
            state.indexes[entry.scope] = index
            return index
        }
        if let replaced { _ = index.remove(id: replaced) }
        if let vector = entry.vector { index.insert(id: id, vector: vector) }
        metrics.setCacheEntries(count)
        await evictIfOverCapacity()
    }

    public var count: Int { state.withLock { $0.count } }

    /// What the cache keeps in memory: vectors in the scopes' indexes, and held answers.
    public var memory: (indexed: Int, heldAnswers: Int, heldAnswerBytes: Int) {
        let (indexes, held, bytes) = state.withLock { ($0.indexes.values, $0.hot.count, $0.hot.bytes) }
        return (indexes.reduce(0) { $0 + $1.count }, held, bytes)
    }

    /// Removes what the store deleted from the maps and indexes.
    func forget(_ keys: [CacheEntryKey], reason: CacheRemovalReason) {
        guard !keys.isEmpty else { return }
        let indexes = state.withLock { state in
            keys.map { key -> ScopeIndex? in
                if state.exact[key.scope]?[key.exactKey] == key.id { state.exact[key.scope]?[key.exactKey] = nil }
                state.pendingHits[key.id] = nil
                state.beliefs.forget(entry: key.id)
                state.hot.remove(key.id)
                state.count -= 1
                state.changedScopes.insert(key.scope)
                return state.indexes[key.scope]
            }
        }
        for (key, index) in zip(keys, indexes) { _ = index?.remove(id: key.id) }
        metrics.recordCacheEvictions(reason, count: keys.count)
        metrics.setCacheEntries(count)
    }

    /// Evicts the least recently used entries while the cache is over capacity. One eviction runs
    /// at a time: two started by commits that crossed the cap together each deleted the whole excess.
    private func evictIfOverCapacity() async {
        guard leadership.isLeader else { return }
        while state.withLock({ state in
            guard !state.evicting, state.count > maxEntries else { return false }
            state.evicting = true
            return true
        }) {
            let excess = count - maxEntries
            do {
                // Recent hits decide what is least recently used: write them first. Evict 1% more
                // than needed so that a full cache does not delete on every insert.
                try await flushHits()
                forget(try await store.evictLeastRecentlyUsed(count: excess + maxEntries / 100), reason: .lru)
                state.withLock { $0.evicting = false }
            } catch {
                state.withLock { $0.evicting = false }
                metrics.recordStoreFailure(.cacheEvict)
                logger.error("cache eviction failed", metadata: ["distill.error": "\(error)"])
                return
            }
        }
    }

    // MARK: - Administration

    public func invalidate(ids: [Int64]) async throws -> Int {
        let keys = try await store.deleteCacheEntries(ids: ids)
        forget(keys, reason: .invalidated)
        return keys.count
    }

    public func purge(scope: String?, createdBefore date: Date?) async throws -> Int {
        let keys = try await store.purgeCacheEntries(scope: scope, createdBefore: date)
        forget(keys, reason: .purged)
        return keys.count
    }

    /// The `limit` entries nearest to `text` in `scope` (in every scope when nil), most similar first.
    public func search(_ text: String, scope: String?, limit: Int) async throws -> [(entry: CacheEntryRecord, similarity: Float)] {
        let vector = try await embedder.embed([text])[0]
        let indexes = state.withLock { state in scope.map { [state.indexes[$0]].compactMap { $0 } } ?? Array(state.indexes.values) }
        let nearest = indexes.flatMap { $0.search(vector, k: limit) }.sorted { $0.similarity > $1.similarity }.prefix(limit)
        var found: [(CacheEntryRecord, Float)] = []
        for result in nearest {
            if let entry = try await store.cacheEntry(id: result.id) { found.append((entry, result.similarity)) }
        }
        return found
    }

    /// A page of entries after `id` (of one scope, or all), by id.
    public func entries(scope: String?, after id: Int64, limit: Int) async throws -> [CacheEntryRecord] {
        try await store.cacheEntries(scope: scope, after: id, limit: limit)
    }

    public func entry(id: Int64) async throws -> CacheEntryRecord? {
        try await store.cacheEntry(id: id)
    }

    /// The full key of the scope with entries that `prefix` starts (`Scope.resolve`).
    public func resolveScope(_ prefix: String) throws(DistillError) -> String {
        try Scope.resolve(prefix, among: state.withLock { Array($0.exact.keys) }, holding: "entries")
    }

    /// A page of entries as export lines, with their vectors.
    public func export(after id: Int64, limit: Int) async throws -> CacheExportPage {
        let entries = try await store.cacheEntries(scope: nil, after: id, limit: limit)
        let lines = entries.map { entry in
            CacheExportLine(
                scope: entry.scope, prompt: entry.prompt, messages: (try? JSONValue.parse(Data(entry.messages.utf8))) ?? [],
                answer: entry.answer, finishReason: entry.finishReason, createdAt: entry.createdAt,
                expiresAt: entry.expiresAt, model: indexConfiguration.model, embedding: entry.embedding.base64EncodedString())
        }
        return CacheExportPage(lines: lines, nextAfter: entries.count == limit ? entries.last?.id : nil)
    }

    /// Adds exported entries; their vectors are kept when this model made them, re-computed otherwise
    /// (none for a prompt longer than the embedder's window: only an exact hit serves it).
    public func importEntries(_ lines: [CacheExportLine]) async throws -> Int {
        let foreign = lines.indices.filter { lines[$0].model != indexConfiguration.model && embedder.seesWhole(lines[$0].prompt) }
        var vectors = lines.map { line -> [Float]? in
            guard line.model == indexConfiguration.model, let data = Data(base64Encoded: line.embedding), !data.isEmpty else { return nil }
            return CacheEntryRecord.decode(data)
        }
        for (index, vector) in zip(foreign, try await embedder.embed(foreign.map { lines[$0].prompt })) {
            vectors[index] = vector
        }
        let entries = zip(lines, vectors).map { line, vector in
            var entry = CacheEntryRecord(
                scope: line.scope, exactKey: Self.exactKey(line.prompt), prompt: line.prompt,
                messages: line.messages.encodedString, answer: line.answer, finishReason: line.finishReason, vector: vector,
                createdAt: line.createdAt, expiresAt: line.expiresAt)
            entry.hits = 0
            return entry
        }
        guard entries.allSatisfy({ ($0.vector?.count ?? indexConfiguration.dimension) == indexConfiguration.dimension }) else {
            throw DistillError.invalidEmbedding(dimension: indexConfiguration.dimension)
        }
        let committed = try await store.insertCacheEntries(entries)
        for ((id, replaced), entry) in zip(committed, entries) {
            await didCommit(entryID: id, replacing: replaced, entry: entry)
        }
        return committed.count
    }

    /// Scopes with their entry counts and settings.
    public func scopes() -> [(scope: String, entries: Int, settings: ScopeSettings)] {
        let counts = state.withLock { state in state.exact.mapValues(\.count) }
        return counts.filter { $0.value > 0 }.sorted { $0.key < $1.key }.map { ($0.key, $0.value, settings(for: $0.key)) }
    }

    // MARK: - Following other nodes

    /// Adds an entry another node committed to the maps and the index (replacing the entry it
    /// replaced); nothing when it is already there.
    public func follow(added entry: CacheEntryRecord) {
        guard let id = entry.id else { return }
        let (index, replaced) = state.withLock { state -> (ScopeIndex?, Int64?) in
            let replaced = state.exact[entry.scope]?[entry.exactKey]
            guard replaced != id else { return (nil, nil) }
            state.exact[entry.scope, default: [:]][entry.exactKey] = id
            if let replaced { state.hot.remove(replaced) } else { state.count += 1 }
            state.changedScopes.insert(entry.scope)
            if let index = state.indexes[entry.scope] { return (index, replaced) }
            let index = ScopeIndex(configuration: indexConfiguration)
            state.indexes[entry.scope] = index
            return (index, replaced)
        }
        guard let index else { return }
        if let replaced { _ = index.remove(id: replaced) }
        if let vector = entry.vector { index.insert(id: id, vector: vector) }
        metrics.setCacheEntries(count)
    }

    /// Removes an entry another node deleted (invalidated, purged, expired or evicted); nothing
    /// when it is not there.
    public func follow(removed key: CacheEntryKey) {
        let index = state.withLock { state -> ScopeIndex? in
            guard state.exact[key.scope]?[key.exactKey] == key.id else { return nil }
            state.exact[key.scope]?[key.exactKey] = nil
            state.pendingHits[key.id] = nil
            state.hot.remove(key.id)
            state.count -= 1
            state.changedScopes.insert(key.scope)
            return state.indexes[key.scope]
        }
        guard let index else { return }
        _ = index.remove(id: key.id)
        metrics.setCacheEntries(count)
    }

    /// Reads the scopes' settings again after another node changed `scope`'s; its held answers
    /// may carry an old expiry: the next hit reads the new one from the store.
    public func reloadSettings(changed scope: String) async throws {
        let overrides = try await store.scopeSettings()
        let maxErrors = try await store.scopeMaxErrors()
        state.withLock { state in
            state.overrides = overrides
            state.maxErrors = maxErrors
            for id in state.exact[scope]?.values.map(\.self) ?? [] { state.hot.remove(id) }
        }
    }

    // MARK: - Upkeep

    /// Writes the hit counts gathered since the last flush.
    public func flushHits() async throws {
        let hits = state.withLock { state in
            defer { state.pendingHits = [:] }
            return state.pendingHits
        }
        do {
            try await store.recordCacheHits(hits)
        } catch {
            // Put them back (merged with newer ones) for the next flush.
            state.withLock { state in
                for (id, hit) in hits {
                    let newer = state.pendingHits[id]
                    state.pendingHits[id] = (hit.count + (newer?.count ?? 0), newer?.last ?? hit.last)
                }
            }
            throw error
        }
    }

    /// Deletes entries that have expired.
    public func removeExpired() async throws {
        let now = clock.now
        while true {
            let keys = try await store.deleteExpiredCacheEntries(now: now, limit: 1000)
            forget(keys, reason: .expired)
            if keys.count < 1000 { return }
        }
    }

    /// Snapshots the index of every scope that changed since its last snapshot.
    public func snapshotChangedScopes() async throws {
        let changed = state.withLock { state in
            defer { state.changedScopes = [] }
            return state.changedScopes.compactMap { scope in state.indexes[scope].map { (scope, $0) } }
        }
        for (scope, index) in changed {
            do {
                let watermark = index.ids().max() ?? 0
                try await store.saveIndexSnapshot(scope: scope, watermark: watermark, bytes: index.snapshot(watermark: watermark))
            } catch {
                state.withLock { _ = $0.changedScopes.insert(scope) }
                throw error
            }
        }
    }

    // MARK: - Start-up

    private func load() async throws {
        let keys = try await store.cacheEntryKeys()
        var exact: [String: [String: Int64]] = [:]
        for key in keys { exact[key.scope, default: [:]][key.exactKey] = key.id }
        var indexes: [String: ScopeIndex] = [:]
        for scope in exact.keys { indexes[scope] = try await loadIndex(scope: scope) }
        let overrides = try await store.scopeSettings()
        let maxErrors = try await store.scopeMaxErrors()
        let beliefs = loadBeliefs(try await store.cacheBeliefs())
        state.withLock { state in
            state.exact = exact
            state.indexes = indexes
            state.count = keys.count
            state.overrides = overrides
            state.maxErrors = maxErrors
            state.beliefs = beliefs
        }
        metrics.setCacheEntries(keys.count)
        logger.info("cache loaded", metadata: ["distill.entries": "\(keys.count)", "distill.scopes": "\(exact.count)"])
    }

    /// A scope's index from its snapshot, reconciled with the stored entries (those added after the
    /// snapshot are inserted, those deleted since are removed); rebuilt from the stored vectors when
    /// there is no usable snapshot.
    private func loadIndex(scope: String) async throws -> ScopeIndex {
        let ids = try await store.indexedCacheEntryIDs(scope: scope)
        if let snapshot = try await store.indexSnapshot(scope: scope) {
            do {
                let (index, _) = try ScopeIndex.restore(from: snapshot.bytes, configuration: indexConfiguration)
                let indexed = Set(index.ids())
                for id in indexed.subtracting(ids) { _ = index.remove(id: id) }
                let missing = ids.subtracting(indexed)
                for (id, vector) in try await store.cacheVectors(ids: missing) { index.insert(id: id, vector: vector) }
                if !missing.isEmpty || indexed.count != ids.count { state.withLock { _ = $0.changedScopes.insert(scope) } }
                return index
            } catch let error as SnapshotError {
                logger.warning(
                    "refusing the index snapshot; rebuilding from the stored vectors",
                    metadata: ["distill.scope": "\(scope.prefix(16))", "distill.error": "\(error)"])
            }
        }
        let vectors = try await store.cacheVectors(scope: scope)
        let total = vectors.count
        let index = ScopeIndex(configuration: indexConfiguration, rebuildingFrom: vectors) { [logger] done in
            logger.info("rebuilding the vector index", metadata: ["distill.scope": "\(scope.prefix(16))", "distill.progress": "\(done)/\(total)"])
        }
        state.withLock { _ = $0.changedScopes.insert(scope) }
        return index
    }

    /// Re-computes every stored vector with `embedder`: vectors of two models are never compared.
    private func reembed(with embedder: any Embedder, from oldModel: String) async throws {
        let total = try await store.cacheEntryCount()
        logger.notice(
            "the cached vectors are from another embedding model; re-embedding the stored prompts",
            metadata: ["distill.from": "\(oldModel)", "distill.to": "\(indexConfiguration.model)", "distill.entries": "\(total)"])
        var after: Int64 = 0
        var done = 0
        while true {
            let page = try await store.cacheEntries(scope: nil, after: after, limit: 256)
            guard let last = page.last?.id else { break }
            let seen = page.filter { embedder.seesWhole($0.prompt) }
            let vectors = try await embedder.embed(seen.map(\.prompt))
            try await store.replaceCacheVectors(zip(seen.compactMap(\.id), vectors).map { ($0, $1) })
            after = last
            done += page.count
            logger.info("re-embedding", metadata: ["distill.progress": "\(done)/\(total)"])
        }
        try await store.deleteIndexSnapshots()
    }

    // MARK: - Verification

    /// The verifier for a scope's settings (one per distinct configuration: its set-up is not per lookup).
    private func verifier(_ settings: ScopeSettings) -> CacheVerifier {
        let configuration = CacheVerifier.Configuration(
            maxWrongRate: settings.maxError, explorationShare: exploreShare, minimumSimilarity: Float(settings.similarityThreshold))
        return state.withLock { state in
            if let verifier = state.verifiers[configuration] { return verifier }
            let verifier = CacheVerifier(configuration)
            state.verifiers[configuration] = verifier
            return verifier
        }
    }

    static func metricDecision(_ verdict: CacheVerifier.Verdict) -> CacheVerificationDecision {
        switch verdict.decision {
        case .serve: .serve
        case .explore: verdict.isAudit ? .audit : .explore
        case .miss: .miss
        }
    }

    /// Takes in the teacher's answer to a lookup that was not served: whether the candidate's cached
    /// answer would have done (`AnswerEquivalence`; long answers compared by their embeddings).
    public func learn(_ lesson: CacheLesson, teacherAnswer: String) async {
        let equivalence = AnswerEquivalence()
        var same = equivalence.areEquivalent(lesson.candidate.answer, teacherAnswer)
        if !same, equivalence.comparesByMeaning(lesson.candidate.answer, teacherAnswer),
            let vectors = try? await embedder.embed([lesson.candidate.answer, teacherAnswer])
        {
            same = equivalence.areEquivalent(lesson.candidate.answer, teacherAnswer, vectors: (vectors[0], vectors[1]))
        }
        let verifier = verifier(settings(for: lesson.scope))
        let entryID = lesson.candidate.entryID
        state.withLock { state in
            var belief = state.beliefs.scopes[lesson.scope] ?? verifier.newScope()
            let entry = state.beliefs.entries[entryID]?.belief ?? verifier.newEntry()
            let learned = verifier.learn(lesson.verdict, wrong: !same, scope: &belief, entry: entry)
            // An entry deleted meanwhile keeps this until a restart; the store drops it (mergeCacheBeliefs).
            state.beliefs.set(
                belief, entry: learned, after: UnsavedBelief.Lesson(entryID: entryID, verdict: lesson.verdict, wrong: !same),
                scope: lesson.scope)
        }
        metrics.recordCacheLesson(scope: lesson.scope, wrong: !same)
    }

    /// The scopes the verified cache has looked up in (what it learned survives their entries).
    public func verifiedScopes() -> [String] { state.withLock { $0.beliefs.scopes.keys.sorted() } }

    /// A scope's verified-cache counts and estimates.
    public func verification(for scope: String) -> ScopeVerification {
        ScopeVerification(maxError: settings(for: scope).maxError, belief: state.withLock { $0.beliefs.scopes[scope] })
    }

    /// Merges what the cache learned since the last flush into the store's beliefs, and holds the
    /// merge: on a store shared by several nodes, what the others learned meanwhile comes with it.
    public func flushBeliefs() async throws {
        let taken = state.withLock { $0.beliefs.take() }
        guard !taken.isEmpty else { return }
        let verifiers = Dictionary(uniqueKeysWithValues: taken.map { ($0.scope, verifier(settings(for: $0.scope))) })
        let dimension = Signals.standard.dimension
        let written: [CacheBeliefRecord]
        do {
            written = try await store.mergeCacheBeliefs(
                scopes: Set(taken.map(\.scope)), entries: Set(taken.flatMap(\.currentEntries.keys))
            ) { stored in
                let stored = Self.decodeBeliefs(stored, dimension: dimension)
                let encoder = JSONEncoder()
                var records: [CacheBeliefRecord] = []
                for taken in taken {
                    guard let verifier = verifiers[taken.scope] else { continue }
                    let merged = verifier.merge(
                        taken.unsaved, current: taken.current, currentEntries: taken.currentEntries,
                        into: stored.scopes[taken.scope], storedEntries: stored.entries.mapValues(\.belief))
                    records.append(CacheBeliefRecord(scope: taken.scope, entryID: nil, belief: try encoder.encode(merged.scope)))
                    for (id, belief) in merged.entries {
                        records.append(CacheBeliefRecord(scope: taken.scope, entryID: id, belief: try encoder.encode(belief)))
                    }
                }
                return records
            }
        } catch {
            state.withLock { $0.beliefs.restore(taken) }
            throw error
        }
        let merged = Self.decodeBeliefs(written, dimension: dimension)
        state.withLock { $0.beliefs.adopt((merged.scopes, merged.entries.mapValues(\.belief)), for: taken, verifiers: verifiers) }
    }

    /// Beliefs as stored; those that do not decode, and scopes' of a model with another layout
    /// (its signals changed), are left out.
    static func decodeBeliefs(
        _ records: [CacheBeliefRecord], dimension: Int
    ) -> (scopes: [String: ScopeBelief], entries: [Int64: (scope: String, belief: EntryBelief)]) {
        let decoder = JSONDecoder()
        var beliefs: (scopes: [String: ScopeBelief], entries: [Int64: (scope: String, belief: EntryBelief)]) = ([:], [:])
        for record in records {
            if let id = record.entryID {
                if let belief = try? decoder.decode(EntryBelief.self, from: record.belief) { beliefs.entries[id] = (record.scope, belief) }
            } else if let belief = try? decoder.decode(ScopeBelief.self, from: record.belief), belief.model.dimension == dimension {
                beliefs.scopes[record.scope] = belief
            }
        }
        return beliefs
    }

    /// The stored beliefs; those of a model with another layout (its signals changed) are dropped:
    /// the scope starts again from the prior.
    private func loadBeliefs(_ records: [CacheBeliefRecord]) -> Beliefs {
        let decoded = Self.decodeBeliefs(records, dimension: Signals.standard.dimension)
        for record in records where record.entryID == nil && decoded.scopes[record.scope] == nil {
            logger.warning("dropping a scope's cache verification belief of another layout", metadata: ["distill.scope": "\(record.scope.prefix(16))"])
        }
        return Beliefs(scopes: decoded.scopes, entries: decoded.entries)
    }

    /// The exact-match key of a message: NFC, lower case, runs of white space as one space, trimmed.
    public static func exactKey(_ text: String) -> String {
        if let key = asciiExactKey(text) { return key }
        return text.precomposedStringWithCanonicalMapping.lowercased().split(whereSeparator: \.isWhitespace).joined(separator: " ")
    }

    /// `exactKey` of an ASCII text, byte by byte: ASCII is already NFC, and Foundation's
    /// normalization took a quarter of an exact hit's lookup. Nil for any other text.
    static func asciiExactKey(_ text: String) -> String? {
        let utf8 = text.utf8
        guard utf8.allSatisfy({ $0 < 0x80 }) else { return nil }
        var key: [UInt8] = []
        key.reserveCapacity(utf8.count)
        var pendingSpace = false
        for byte in utf8 {
            // ASCII's white space in Unicode's sense (`Character.isWhitespace`): tab, line feed, vertical tab, form feed, carriage return, space.
            if byte == 0x20 || (0x09...0x0D).contains(byte) {
                pendingSpace = !key.isEmpty
                continue
            }
            if pendingSpace { key.append(0x20) }
            pendingSpace = false
            key.append((UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte) ? byte + 0x20 : byte)
        }
        return String(decoding: key, as: UTF8.self)
    }
}
