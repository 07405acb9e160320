import Foundation

// The admin API of the semantic cache (`/admin/cache/…`); `cachectl cache` speaks it.

/// A cache entry as the admin API shows it.
public struct CacheEntryInfo: Codable, Sendable, Equatable {
    public var id: Int64
    public var scope: String
    public var prompt: String
    public var answer: String
    public var finishReason: String
    public var createdAt: Date
    public var expiresAt: Date?
    public var lastHitAt: Date?
    public var hits: Int
    /// The request's messages (only when one entry is shown).
    public var messages: JSONValue?

    public init(
        id: Int64, scope: String, prompt: String, answer: String, finishReason: String, createdAt: Date, expiresAt: Date?,
        lastHitAt: Date?, hits: Int, messages: JSONValue?
    ) {
        self.id = id
        self.scope = scope
        self.prompt = prompt
        self.answer = answer
        self.finishReason = finishReason
        self.createdAt = createdAt
        self.expiresAt = expiresAt
        self.lastHitAt = lastHitAt
        self.hits = hits
        self.messages = messages
    }

    enum CodingKeys: String, CodingKey {
        case id, scope, prompt, answer, hits, messages
        case finishReason = "finish_reason"
        case createdAt = "created_at"
        case expiresAt = "expires_at"
        case lastHitAt = "last_hit_at"
    }
}

/// `GET /admin/cache/entries`: a page, oldest first; ask again with `after=nextAfter` until nil.
public struct CacheEntryPage: Codable, Sendable, Equatable {
    public var entries: [CacheEntryInfo]
    public var nextAfter: Int64?

    public init(entries: [CacheEntryInfo], nextAfter: Int64?) {
        self.entries = entries
        self.nextAfter = nextAfter
    }

    enum CodingKeys: String, CodingKey {
        case entries
        case nextAfter = "next_after"
    }
}

/// `POST /admin/cache/search`: the entries nearest to a text, in one scope or all.
public struct CacheSearchRequest: Codable, Sendable, Equatable {
    public var text: String
    /// A scope key or an unambiguous prefix of one; nil searches every scope.
    public var scope: String?
    public var limit: Int

    public init(text: String, scope: String?, limit: Int) {
        self.text = text
        self.scope = scope
        self.limit = limit
    }
}

public struct CacheSearchResult: Codable, Sendable, Equatable {
    public var entry: CacheEntryInfo
    public var similarity: Float

    public init(entry: CacheEntryInfo, similarity: Float) {
        self.entry = entry
        self.similarity = similarity
    }
}

/// `POST /admin/cache/purge`: deletes the entries of a scope (all if nil) older than a duration (any age if nil).
public struct CachePurgeRequest: Codable, Sendable, Equatable {
    public var scope: String?
    public var olderThanSeconds: Double?

    public init(scope: String?, olderThanSeconds: Double?) {
        self.scope = scope
        self.olderThanSeconds = olderThanSeconds
    }

    enum CodingKeys: String, CodingKey {
        case scope
        case olderThanSeconds = "older_than_seconds"
    }
}

/// How many entries an operation deleted or imported.
public struct CacheCount: Codable, Sendable, Equatable {
    public var count: Int

    public init(count: Int) { self.count = count }
}

/// One line of `cachectl cache export` and `import`: an entry with its vector and the model that made it.
public struct CacheExportLine: Codable, Sendable, Equatable {
    public var scope: String
    public var prompt: String
    public var messages: JSONValue
    public var answer: String
    public var finishReason: String
    public var createdAt: Date
    public var expiresAt: Date?
    /// The embedding model of `embedding` (`name@sha256`); another model's vectors are re-computed on import.
    public var model: String
    /// The prompt's embedding: base64 of little-endian Float32s.
    public var embedding: String

    public init(
        scope: String, prompt: String, messages: JSONValue, answer: String, finishReason: String, createdAt: Date,
        expiresAt: Date?, model: String, embedding: String
    ) {
        self.scope = scope
        self.prompt = prompt
        self.messages = messages
        self.answer = answer
        self.finishReason = finishReason
        self.createdAt = createdAt
        self.expiresAt = expiresAt
        self.model = model
        self.embedding = embedding
    }

    enum CodingKeys: String, CodingKey {
        case scope, prompt, messages, answer, model, embedding
        case finishReason = "finish_reason"
        case createdAt = "created_at"
        case expiresAt = "expires_at"
    }
}

/// `GET /admin/cache/export`: a page of export lines.
public struct CacheExportPage: Codable, Sendable, Equatable {
    public var lines: [CacheExportLine]
    public var nextAfter: Int64?

    public init(lines: [CacheExportLine], nextAfter: Int64?) {
        self.lines = lines
        self.nextAfter = nextAfter
    }

    enum CodingKeys: String, CodingKey {
        case lines
        case nextAfter = "next_after"
    }
}

/// A scope with its entry count and the settings in force there.
public struct CacheScopeInfo: Codable, Sendable, Equatable {
    public var scope: String
    public var entries: Int
    public var similarityThreshold: Double
    /// nil: entries never expire.
    public var ttlSeconds: Double?
    /// δ in force: the largest share of wrong answers among the scope's paraphrase hits.
    public var maxError: Double?
    public var verification: CacheScopeVerification?
    /// What the scope is; nil for a scope distilld has not seen a teacher answer in since this was kept.
    public var description: ScopeDescription?

    public init(
        scope: String, entries: Int, similarityThreshold: Double, ttlSeconds: Double?, maxError: Double? = nil,
        verification: CacheScopeVerification? = nil, description: ScopeDescription? = nil
    ) {
        self.scope = scope
        self.entries = entries
        self.similarityThreshold = similarityThreshold
        self.ttlSeconds = ttlSeconds
        self.maxError = maxError
        self.verification = verification
        self.description = description
    }

    enum CodingKeys: String, CodingKey {
        case scope, entries, verification, description
        case similarityThreshold = "similarity_threshold"
        case ttlSeconds = "ttl_seconds"
        case maxError = "max_error"
    }
}

/// What a scope's verified cache has done since the scope was created (it survives restarts).
public struct CacheScopeVerification: Codable, Sendable, Equatable {
    public var lookups: Int
    /// Paraphrases served.
    public var hits: Int
    /// Lookups sent to the teacher because the cache could not judge the candidate yet, and
    /// servable ones sent anyway to check the estimate.
    public var explorations: Int
    public var audits: Int
    /// Teacher answers compared with a candidate's cached answer, and how many differed.
    public var lessons: Int
    public var wrongLessons: Int
    /// The share of the hits the model expects were wrong, and its upper bound (nil before a hit).
    public var estimatedWrongRate: Double?
    public var wrongRateUpperBound: Double?

    public init(
        lookups: Int, hits: Int, explorations: Int, audits: Int, lessons: Int, wrongLessons: Int,
        estimatedWrongRate: Double?, wrongRateUpperBound: Double?
    ) {
        self.lookups = lookups
        self.hits = hits
        self.explorations = explorations
        self.audits = audits
        self.lessons = lessons
        self.wrongLessons = wrongLessons
        self.estimatedWrongRate = estimatedWrongRate
        self.wrongRateUpperBound = wrongRateUpperBound
    }

    enum CodingKeys: String, CodingKey {
        case lookups, hits, explorations, audits, lessons
        case wrongLessons = "wrong_lessons"
        case estimatedWrongRate = "estimated_wrong_rate"
        case wrongRateUpperBound = "wrong_rate_upper_bound"
    }
}

/// What a scope is: requests share a scope when they have the same tenant, model, system prompt
/// and other context (the scope key is a hash of them).
public struct ScopeDescription: Codable, Sendable, Equatable, CustomStringConvertible {
    /// `anonymous`, or `key:` and the first 32 hex digits of the SHA-256 of the API key.
    public var tenant: String
    public var model: String
    /// The first words of the system (or developer) message, if there is one.
    public var systemPrompt: String?

    public init(tenant: String, model: String, systemPrompt: String?) {
        (self.tenant, self.model, self.systemPrompt) = (tenant, model, systemPrompt)
    }

    enum CodingKeys: String, CodingKey {
        case tenant, model
        case systemPrompt = "system_prompt"
    }

    public var description: String {
        "\(tenant), \(model)" + (systemPrompt.map { ", system: \"\($0)…\"" } ?? "")
    }
}

/// `GET /admin/cache/stats`.
public struct CacheStats: Codable, Sendable, Equatable {
    public var entries: Int
    /// Vectors in the scopes' indexes: `entries` when the indexes are whole.
    public var indexed: Int
    /// Answers held in memory (`cache.hot_answer_bytes`), and their size.
    public var heldAnswers: Int
    public var heldAnswerBytes: Int
    public var scopes: [CacheScopeInfo]
    /// Since start-up: lookups by result (`exact_hit`, `semantic_hit`, `miss`), bypasses by reason,
    /// entries removed by reason.
    public var lookups: [String: Int64]
    public var bypasses: [String: Int64]
    public var evictions: [String: Int64]

    public init(
        entries: Int, indexed: Int, heldAnswers: Int, heldAnswerBytes: Int, scopes: [CacheScopeInfo],
        lookups: [String: Int64], bypasses: [String: Int64], evictions: [String: Int64]
    ) {
        self.entries = entries
        self.indexed = indexed
        self.heldAnswers = heldAnswers
        self.heldAnswerBytes = heldAnswerBytes
        self.scopes = scopes
        self.lookups = lookups
        self.bypasses = bypasses
        self.evictions = evictions
    }
}

/// `PUT /admin/cache/scopes/{scope}`: a scope's own threshold, TTL and error bound (nil: the global setting).
public struct CacheScopeSettings: Codable, Sendable, Equatable {
    public var similarityThreshold: Double?
    public var ttlSeconds: Double?
    /// δ, strictly between 0 and 1.
    public var maxError: Double?

    public init(similarityThreshold: Double?, ttlSeconds: Double?, maxError: Double? = nil) {
        self.similarityThreshold = similarityThreshold
        self.ttlSeconds = ttlSeconds
        self.maxError = maxError
    }

    enum CodingKeys: String, CodingKey {
        case similarityThreshold = "similarity_threshold"
        case ttlSeconds = "ttl_seconds"
        case maxError = "max_error"
    }
}
