import DistillAPI
import DistillCore
import Embedding
import Foundation
import Logging
import PostgresStore
import SQLiteStore
import ServiceLifecycle
import Storage
import Teacher

#if canImport(Glibc)
import Glibc
#endif

/// The composition root: the running system behind the listeners (the store, the embedder, the
/// cache and the students, the teacher, the request path, re-distillation, metrics), built from the
/// configuration. One per daemon: it holds an exclusive lock on its data directory.
public final class DistillSystem: Sendable {
    public let config: DistillConfig
    public let store: any DistillStore
    public let teacher: TeacherClient
    public let cache: SemanticCache?
    /// Nil when `student.enabled` is false.
    public let students: Students?
    public let distiller: Distiller?
    public let teacherLogRetention: TeacherLogRetention
    public let embedder: (any Embedder)?
    public let metrics: DistillMetrics
    public let completions: CompletionService
    public let startedAt: Date
    public let clock: any WallClock
    /// Background work that belongs in the daemon's ServiceGroup (cache upkeep, re-distillation).
    public let services: [any Service]
    /// Follows the other nodes' commits, when the store is shared (PostgreSQL).
    public let follower: ClusterFollower?
    /// Whether this node runs the background work done once for all nodes.
    public let leadership: Leadership
    private let lock: DataDirectoryLock

    /// Opens the data directory and the store, loads the embedding model (unless `embedder` is
    /// given, e.g. shared by tests), the cache and the active students.
    public static func open(
        config: DistillConfig, environment: [String: String], embedder: (any Embedder)? = nil,
        clock: any WallClock = SystemClock(), logger: Logger
    ) async throws(SystemError) -> DistillSystem {
        do {
            try KernelChoice.checkOverride(environment)
        } catch {
            throw .kernels(error)
        }
        let lock = try DataDirectoryLock(directory: config.store.dataDir)
        let store = try await openStore(config.store, environment: environment, logger: logger)
        // Read before the memory is loaded from the store: what other nodes commit from here on is followed.
        let feedStart: Int64?
        do {
            feedStart = try await (store as? any ChangeFeed)?.latestChangeID()
        } catch {
            throw .store(.cannotOpen(path: store.location, reason: "cannot read the change feed: \(error)"))
        }
        let metrics = DistillMetrics()
        logger.info("kernels chosen", metadata: ["distill.kernels": "\(KernelChoice.host)"])
        metrics.setKernels(KernelChoice.host.kernelSet.rawValue)
        // Alone, a node leads; sharing a store, it leads once elected (LeaderCampaign, a service).
        let leadership = Leadership(leading: !(store is any LeaderElection))
        guard config.cache.enabled || config.student.enabled else {
            return DistillSystem(
                config: config, environment: environment, lock: lock, store: store, cache: nil, students: nil,
                follower: nil, leadership: leadership, embedder: embedder, clock: clock, metrics: metrics, logger: logger)
        }
        let loaded: any Embedder
        if let embedder { loaded = embedder } else { loaded = try loadEmbedder(config.embedding, logger: logger) }
        do {
            try await dropTeacherLogVectors(ofModelsOtherThan: loaded.identity.key, store: store, logger: logger)
        } catch {
            throw .students("cannot check the teacher log's vectors: \(error)")
        }
        var cache: SemanticCache?
        if config.cache.enabled {
            do {
                cache = try await SemanticCache.open(
                    store: store, settings: config.cache, index: config.index, embedder: loaded, clock: clock,
                    metrics: metrics, leadership: leadership, logger: logger)
            } catch {
                throw .cache("\(error)")
            }
        }
        var students: Students?
        if config.student.enabled {
            do {
                students = try await Students.open(
                    store: store, configuration: config.student, embeddingModel: loaded.identity.key, metrics: metrics,
                    logger: logger)
            } catch {
                throw .students("\(error)")
            }
        }
        var follower: ClusterFollower?
        if let feed = store as? any ChangeFeed, let feedStart {
            follower = ClusterFollower(
                feed: feed, store: store, from: feedStart, cache: cache, students: students, leadership: leadership, clock: clock,
                logger: logger)
            // Serves once it has caught up with what was committed while it loaded.
            do {
                try await follower?.catchUp()
            } catch {
                throw .store(.cannotOpen(path: store.location, reason: "cannot follow the change feed: \(error)"))
            }
        }
        if let students { metrics.registerStudents(students.status()) }
        if let cache { metrics.registerVerifiedScopes(cache.verifiedScopes().map { ($0, cache.verification(for: $0)) }) }
        return DistillSystem(
            config: config, environment: environment, lock: lock, store: store, cache: cache, students: students,
            follower: follower, leadership: leadership, embedder: loaded, clock: clock, metrics: metrics, logger: logger)
    }

    /// The PostgreSQL store `store.url` names, else the SQLite database in the data directory.
    static func openStore(_ config: DistillConfig.Store, environment: [String: String], logger: Logger) async throws(SystemError) -> any DistillStore {
        do {
            guard let shared = try config.postgresConfiguration(environment: environment) else {
                return try SQLiteStore(path: config.databasePath)
            }
            return try await PostgresStore.open(configuration: shared, logger: logger)
        } catch let error as StoreError {
            throw .store(error)
        } catch {
            throw .store(.cannotOpen(path: config.url ?? config.databasePath, reason: "\(error)"))
        }
    }

    /// The metadata key of the embedding model the teacher log's vectors belong to.
    static let teacherLogModelKey = "teacher_log_embedding_model"

    /// Clears the teacher log's vectors when another embedding model made them (the distiller
    /// computes them again as it needs them): vectors of two models never train one student.
    /// Checked whether the cache is on or not; a store from before this key takes the cache's.
    static func dropTeacherLogVectors(ofModelsOtherThan model: String, store: any DistillStore, logger: Logger) async throws {
        var stored = try await store.metadata(teacherLogModelKey)
        if stored == nil { stored = try await store.metadata(SemanticCache.modelKey) }
        if let stored, stored != model {
            logger.notice(
                "the teacher log's vectors are from another embedding model; they will be computed again",
                metadata: ["distill.from": "\(stored)", "distill.to": "\(model)"])
            // Cleared before the new model is recorded: a crash in between clears them again.
            try await store.clearTeacherLogEmbeddings()
        }
        try await store.setMetadata(teacherLogModelKey, model)
    }

    private init(
        config: DistillConfig, environment: [String: String], lock: DataDirectoryLock, store: any DistillStore,
        cache: SemanticCache?, students: Students?, follower: ClusterFollower?, leadership: Leadership, embedder: (any Embedder)?,
        clock: any WallClock,
        metrics: DistillMetrics, logger: Logger
    ) {
        self.config = config
        self.lock = lock
        self.store = store
        self.cache = cache
        self.students = students
        self.embedder = embedder
        self.metrics = metrics
        self.clock = clock
        let teacherConfiguration = config.teacherConfiguration(environment: environment)
        self.teacher = TeacherClient(configuration: teacherConfiguration, logger: logger)
        // The request path remembers recent texts' vectors: a question asked again (a paraphrase,
        // which adds no exact entry, or a request that bypasses the cache) is not embedded again.
        self.completions = CompletionService(
            store: store, teacher: teacher, cache: cache, students: students, embedder: embedder.map { MemoizingEmbedder($0) },
            temperatureCeiling: config.cache.temperatureCeiling, clock: clock, metrics: metrics, logger: logger)
        self.startedAt = clock.now
        var distiller: Distiller?
        if let students, let embedder {
            // A run's rows, vectors and training buffers were freed in whichever malloc arenas its threads
            // used, and glibc keeps freed arena memory: without a trim, runs under load raised the RSS by
            // ~7 MiB each (the soak). Give it back to the system after each run.
            distiller = Distiller(
                store: store, embedder: embedder, students: students, settings: config.distill, clock: clock,
                metrics: metrics, releaseMemory: Allocator.trim, leadership: leadership, logger: logger)
        }
        self.distiller = distiller
        let retentionDays = config.store.teacherLogRetentionDays
        self.teacherLogRetention = TeacherLogRetention(
            store: store, students: students, retention: retentionDays > 0 ? retentionDays * 86_400 : nil, clock: clock,
            leadership: leadership, logger: logger)
        var services: [any Service] = []
        // A service may not return before shutdown: the sweep joins the group only with a retention.
        if retentionDays > 0 { services.append(teacherLogRetention) }
        if let cache {
            services.append(
                CacheUpkeep(
                    cache: cache, flushInterval: .seconds(config.cache.hitFlushSeconds),
                    snapshotInterval: .seconds(config.cache.snapshotIntervalSeconds), leadership: leadership, logger: logger))
        }
        if let distiller { services.append(distiller) }
        if let follower { services.append(follower) }
        if let election = store as? any LeaderElection {
            services.append(LeaderCampaign(election: election, leadership: leadership))
        }
        self.follower = follower
        self.leadership = leadership
        self.services = services
        if teacherConfiguration.apiKey == nil {
            logger.notice("no teacher API key: \(config.teacher.apiKeyEnv) is not set; calling the teacher without one")
        }
    }

    /// The encoder of `embedding.model_dir` behind a micro-batcher.
    public static func loadEmbedder(_ configuration: DistillConfig.Embedding, logger: Logger) throws(SystemError) -> any Embedder {
        let encoder: BertEncoder
        do {
            encoder = try BertEncoder(modelDirectory: URL(fileURLWithPath: configuration.modelDir), threads: configuration.threads)
        } catch {
            throw .embeddingModel(path: configuration.modelDir, reason: "\(error)")
        }
        logger.info(
            "embedding model loaded",
            metadata: ["distill.model": "\(encoder.identity)", "distill.embedding_threads": "\(encoder.threadCount)"])
        return BatchingEmbedder(
            encoder: encoder, maxBatchSize: configuration.maxBatch,
            maxWait: .milliseconds(configuration.maxWaitMilliseconds))
    }

    /// Closes what the system opened; call once, after the listeners have stopped.
    public func shutdown(logger: Logger) async {
        do {
            try await teacher.shutdown()
        } catch {
            logger.warning("teacher client did not shut down cleanly: \(error)")
        }
        do {
            try store.close()
        } catch {
            logger.error("closing the store failed: \(error)")
        }
    }

    /// Why the daemon should not receive traffic right now; empty when it is ready.
    public func unreadiness() async -> [String] {
        var reasons: [String] = []
        do {
            try await store.checkHealth()
        } catch {
            reasons.append("store: \(error)")
        }
        if teacher.breaker.snapshot.state == .open { reasons.append("teacher: circuit breaker open") }
        return reasons
    }

    /// `GET /v1/models`: what the teacher serves.
    public func listModels() async throws(TeacherError) -> JSONValue {
        try await teacher.models()
    }

    /// `GET /metrics`: every series in Prometheus's text format.
    public func prometheusExposition() -> [UInt8] {
        metrics.updateBreaker(teacher.breaker.snapshot.state)
        metrics.updateProcess()
        if let students { metrics.updateStudents(students.status()) }
        metrics.updateCluster(feedLagSeconds: follower?.lagSeconds ?? 0, leader: leadership.isLeader)
        return metrics.registry.emitToBuffer()
    }

    public func status(listeners: [String]) async -> DaemonStatus {
        let breaker = teacher.breaker.snapshot
        return DaemonStatus(
            version: DistillVersion.current, startedAt: startedAt, uptimeSeconds: clock.now.timeIntervalSince(startedAt),
            listeners: listeners,
            store: .init(
                path: store.location, sizeBytes: store.sizeOnDisk ?? 0,
                teacherLogRows: (try? await store.teacherLogCount()) ?? -1),
            teacher: .init(
                baseURL: config.teacher.baseURL, breakerState: breaker.state.rawValue,
                consecutiveFailures: breaker.consecutiveFailures),
            kernels: KernelChoice.host.description,
            cluster: await clusterStatus())
    }

    /// Teacher log rows after `id`, oldest first.
    public func teacherLogPage(after id: Int64, limit: Int) async throws -> TeacherLogPage {
        let records = try await store.teacherLog(after: id, limit: limit)
        let decoder = JSONDecoder()
        let entries = records.map { record in
            TeacherLogEntry(
                id: record.id ?? 0, createdAt: record.createdAt, requestID: record.requestID, scope: record.scope,
                model: record.model, messages: (try? JSONValue.parse(Data(record.messages.utf8))) ?? .null,
                parameters: (try? JSONValue.parse(Data(record.parameters.utf8))) ?? .null, answer: record.answer,
                topLogprobs: record.topLogprobs.flatMap { try? decoder.decode([TokenLogprob].self, from: Data($0.utf8)) },
                promptTokens: record.promptTokens, completionTokens: record.completionTokens,
                latencyMilliseconds: record.latencyMilliseconds, streamed: record.streamed)
        }
        return TeacherLogPage(entries: entries, nextAfter: records.count == limit ? entries.last?.id : nil)
    }
}

public enum SystemError: Error, CustomStringConvertible {
    case dataDirectory(path: String, reason: String)
    case alreadyRunning(path: String)
    case store(StoreError)
    case embeddingModel(path: String, reason: String)
    case kernels(KernelOverrideError)
    case cache(String)
    case students(String)

    public var description: String {
        switch self {
        case .dataDirectory(let path, let reason): "cannot use the data directory \(path): \(reason)"
        case .alreadyRunning(let path): "another distilld is using \(path) (it holds \(path)/distilld.lock)"
        case .store(let error): "\(error)"
        case .embeddingModel(let path, let reason):
            "cannot load the embedding model from \(path) (run scripts/bootstrap, or set embedding.model_dir): \(reason)"
        case .kernels(let error): "\(error)"
        case .cache(let reason): "cannot open the cache: \(reason)"
        case .students(let reason): "cannot load the students: \(reason)"
        }
    }
}

/// An exclusive `flock` on `<data dir>/distilld.lock`, held for the life of the process: two
/// daemons writing one store would interleave their work. The kernel drops it if the process dies.
final class DataDirectoryLock: Sendable {
    private let descriptor: Int32

    init(directory: String) throws(SystemError) {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw .dataDirectory(path: directory, reason: error.localizedDescription)
        }
        let path = (directory as NSString).appendingPathComponent("distilld.lock")
        descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            throw .dataDirectory(path: directory, reason: String(cString: strerror(errno)))
        }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            close(descriptor)
            throw .alreadyRunning(path: directory)
        }
    }

    deinit {
        close(descriptor)
    }
}
