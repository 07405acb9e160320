import Foundation

/// One cached answer: a teacher answer to `prompt` in `scope`, with the prompt's embedding.
public struct CacheEntryRecord: Codable, Sendable, Equatable {
    public var id: Int64?
    public var scope: String
    /// The normalized last user message: what an exact hit matches.
    public var exactKey: String
    /// The last user message as the client sent it.
    public var prompt: String
    /// The request's `messages` as JSON.
    public var messages: String
    /// The teacher's answer: what a hit replays.
    public var answer: String
    public var finishReason: String
    /// The prompt's embedding: little-endian Float32s; empty for an entry only an exact hit may serve
    /// (its prompt was longer than the embedder's window), which stores list among no vectors.
    public var embedding: Data
    public var createdAt: Date
    public var expiresAt: Date?
    public var lastHitAt: Date?
    public var hits: Int
    public var teacherLogID: Int64?

    public init(
        scope: String, exactKey: String, prompt: String, messages: String, answer: String, finishReason: String,
        vector: [Float]?, createdAt: Date, expiresAt: Date?
    ) {
        self.scope = scope
        self.exactKey = exactKey
        self.prompt = prompt
        self.messages = messages
        self.answer = answer
        self.finishReason = finishReason
        self.embedding = vector.map(Self.encode) ?? Data()
        self.createdAt = createdAt
        self.expiresAt = expiresAt
        self.hits = 0
    }

    enum CodingKeys: String, CodingKey {
        case id, scope, prompt, messages, answer, embedding, hits
        case exactKey = "exact_key"
        case finishReason = "finish_reason"
        case createdAt = "created_at"
        case expiresAt = "expires_at"
        case lastHitAt = "last_hit_at"
        case teacherLogID = "teacher_log_id"
    }

    /// nil for an entry only an exact hit may serve.
    public var vector: [Float]? { embedding.isEmpty ? nil : Self.decode(embedding) }

    public static func encode(_ vector: [Float]) -> Data {
        var data = Data(capacity: vector.count * 4)
        for value in vector { withUnsafeBytes(of: value.bitPattern.littleEndian) { data.append(contentsOf: $0) } }
        return data
    }

    /// The vector that `embedding` bytes (little-endian Float32s) hold.
    public static func decode(_ data: Data) -> [Float] {
        data.withUnsafeBytes { raw in
            (0..<raw.count / 4).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self))) }
        }
    }
}

/// What identifies a cache entry to the in-memory structures built over the table.
public struct CacheEntryKey: Sendable, Hashable {
    public var id: Int64
    public var scope: String
    public var exactKey: String
    public var expiresAt: Date?

    public init(id: Int64, scope: String, exactKey: String, expiresAt: Date?) {
        self.id = id
        self.scope = scope
        self.exactKey = exactKey
        self.expiresAt = expiresAt
    }
}

/// The ids a teacher exchange was committed under.
public struct TeacherExchangeCommit: Sendable, Equatable {
    public var logID: Int64
    /// The cache entry written with it, if any.
    public var entryID: Int64?
    /// The entry it replaced (same scope and exact key), if any.
    public var replacedEntryID: Int64?

    public init(logID: Int64, entryID: Int64? = nil, replacedEntryID: Int64? = nil) {
        self.logID = logID
        self.entryID = entryID
        self.replacedEntryID = replacedEntryID
    }
}

/// One teacher exchange: the training data of the student. JSON columns hold the wire form.
public struct TeacherLogRecord: Codable, Sendable, Equatable {

    public var id: Int64?
    public var createdAt: Date
    public var requestID: String
    public var scope: String
    public var model: String
    /// The request's `messages` as JSON.
    public var messages: String
    /// The request's other fields as a JSON object.
    public var parameters: String
    /// The last user message's text: what the answer answers.
    public var prompt: String
    public var answer: String
    /// The answer's per-token `top_logprobs` as JSON, when the upstream returned them.
    public var topLogprobs: String?
    public var promptTokens: Int?
    public var completionTokens: Int?
    public var latencyMilliseconds: Double
    public var streamed: Bool
    /// The prompt's embedding (little-endian Float32s), when the request path computed one.
    public var embedding: Data?

    public init(
        createdAt: Date, requestID: String, scope: String, model: String, messages: String, parameters: String,
        prompt: String, answer: String, topLogprobs: String?, promptTokens: Int?, completionTokens: Int?,
        latencyMilliseconds: Double, streamed: Bool, vector: [Float]? = nil
    ) {
        self.createdAt = createdAt
        self.requestID = requestID
        self.scope = scope
        self.model = model
        self.messages = messages
        self.parameters = parameters
        self.prompt = prompt
        self.answer = answer
        self.topLogprobs = topLogprobs
        self.promptTokens = promptTokens
        self.completionTokens = completionTokens
        self.latencyMilliseconds = latencyMilliseconds
        self.streamed = streamed
        self.embedding = vector.map(CacheEntryRecord.encode)
    }

    enum CodingKeys: String, CodingKey {
        case id, scope, model, messages, parameters, prompt, answer, streamed, embedding
        case createdAt = "created_at"
        case requestID = "request_id"
        case topLogprobs = "top_logprobs"
        case promptTokens = "prompt_tokens"
        case completionTokens = "completion_tokens"
        case latencyMilliseconds = "latency_ms"
    }
}

/// One trained student of a scope: every version is kept, for rollback and for the record.
public struct StudentVersionRecord: Codable, Sendable, Equatable {

    public enum Status: String, Codable, Sendable {
        /// Trained, not (yet) promoted.
        case candidate
        /// Serving its scope. At most one per scope.
        case active
        /// Served once; replaced by a newer version or rolled back from.
        case retired
        /// Failed the promotion gate.
        case rejected
        /// Was active until its audited answers agreed with the teacher less than the target: its scope
        /// has no student until a new version passes the gate.
        case suspended
    }

    public var id: Int64?
    public var scope: String
    public var createdAt: Date
    public var status: Status
    /// The serialized (quantized) model.
    public var model: Data
    /// Evaluation metrics, as JSON.
    public var metrics: String
    public var trainedThrough: Int64
    public var trainingSeconds: Double

    public init(
        scope: String, createdAt: Date, status: Status, model: Data, metrics: String, trainedThrough: Int64,
        trainingSeconds: Double
    ) {
        self.scope = scope
        self.createdAt = createdAt
        self.status = status
        self.model = model
        self.metrics = metrics
        self.trainedThrough = trainedThrough
        self.trainingSeconds = trainingSeconds
    }

    enum CodingKeys: String, CodingKey {
        case id, scope, status, model, metrics
        case createdAt = "created_at"
        case trainedThrough = "trained_through"
        case trainingSeconds = "training_seconds"
    }
}

/// What a backup copied.
public struct BackupSummary: Sendable, Equatable {
    public var bytes: Int64
    public var teacherLogRows: Int64
    public var cacheEntries: Int64

    public init(bytes: Int64, teacherLogRows: Int64, cacheEntries: Int64) {
        self.bytes = bytes
        self.teacherLogRows = teacherLogRows
        self.cacheEntries = cacheEntries
    }
}

public enum StoreError: Error, CustomStringConvertible {
    case cannotOpen(path: String, reason: String)
    case noSuchRow(table: String, id: Int64)
    case backupFailed(path: String, reason: String)
    /// The store did not answer (e.g. its server is down); it may later.
    case unavailable(location: String, reason: String)

    public var description: String {
        switch self {
        case .cannotOpen(let path, let reason): "cannot open the store at \(path): \(reason)"
        case .noSuchRow(let table, let id): "no row \(id) in \(table)"
        case .backupFailed(let path, let reason): "cannot back up the store to \(path): \(reason)"
        case .unavailable(let location, let reason): "the store at \(location) is unavailable: \(reason)"
        }
    }
}

/// What the verified cache learned about a scope (`entryID` nil) or one of its entries, as the
/// cache encoded it (JSON of CacheVerification's `ScopeBelief` or `EntryBelief`): the store keeps
/// it without reading it.
/// What an operator set for one scope; nil where the global setting holds.
public struct ScopeOverrides: Sendable, Equatable {
    public var similarityThreshold: Double?
    public var ttlSeconds: Double?
    public var maxError: Double?

    public init(similarityThreshold: Double? = nil, ttlSeconds: Double? = nil, maxError: Double? = nil) {
        self.similarityThreshold = similarityThreshold
        self.ttlSeconds = ttlSeconds
        self.maxError = maxError
    }
}

public struct CacheBeliefRecord: Sendable, Equatable {
    public var scope: String
    public var entryID: Int64?
    public var belief: Data

    public init(scope: String, entryID: Int64?, belief: Data) {
        self.scope = scope
        self.entryID = entryID
        self.belief = belief
    }
}
