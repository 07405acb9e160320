import DistillAPI
import DistillCore
import Foundation
import Hummingbird
import NIOCore
import Storage

/// `/admin/cache/…`: the semantic cache's admin API (on the Unix socket only).
func addCacheRoutes(to router: Router<DistillRequestContext>, system: DistillSystem) {
    /// The cache; a 409 when it is disabled.
    @Sendable func cache() throws(APIError) -> SemanticCache {
        guard let cache = system.cache else {
            throw APIError(status: 409, type: "invalid_request_error", code: "cache_disabled", message: "The cache is disabled (cache.enabled).")
        }
        return cache
    }

    router.get(APIPath.cacheEntries.route) { request, _ -> Response in
        let cache = try cache()
        let scope = try request.uri.queryParameters["scope"].map { prefix throws(DistillError) in try cache.resolveScope(String(prefix)) }
        let after = try request.uri.queryParameters.integer("after", default: 0, in: 0...Int64.max)
        let limit = Int(try request.uri.queryParameters.integer("limit", default: 100, in: 1...5000))
        let entries = try await cache.entries(scope: scope, after: after, limit: limit)
        return jsonResponse(CacheEntryPage(entries: entries.map { info($0) }, nextAfter: entries.count == limit ? entries.last?.id : nil))
    }

    router.get(APIPath.cacheEntry.route) { _, context -> Response in
        guard let entry = try await cache().entry(id: try entryID(context)) else { throw noSuchEntry(context) }
        return jsonResponse(info(entry, withMessages: true))
    }

    router.delete(APIPath.cacheEntry.route) { _, context -> Response in
        let id = try entryID(context)
        let count = try await cache().invalidate(ids: [id])
        context.logAdminAction("cache entry deleted", ["distill.entry": "\(id)", "distill.count": "\(count)"])
        return jsonResponse(CacheCount(count: count))
    }

    router.post(APIPath.cacheSearch.route) { request, _ -> Response in
        let cache = try cache()
        let search = try await decode(CacheSearchRequest.self, from: request)
        let scope = try search.scope.map { prefix throws(DistillError) in try cache.resolveScope(prefix) }
        let found = try await cache.search(search.text, scope: scope, limit: max(search.limit, 0))
        return jsonResponse(found.map { CacheSearchResult(entry: info($0.entry), similarity: $0.similarity) })
    }

    router.post(APIPath.cachePurge.route) { request, context -> Response in
        let cache = try cache()
        let purge = try await decode(CachePurgeRequest.self, from: request)
        let scope = try purge.scope.map { prefix throws(DistillError) in try cache.resolveScope(prefix) }
        let before = purge.olderThanSeconds.map { Date().addingTimeInterval(-$0) }
        let count = try await cache.purge(scope: scope, createdBefore: before)
        let olderThan = purge.olderThanSeconds.map { "\($0)" } ?? "any"
        context.logAdminAction(
            "cache purged", ["distill.scope": "\(scope ?? "all")", "distill.older_than_seconds": "\(olderThan)", "distill.count": "\(count)"])
        return jsonResponse(CacheCount(count: count))
    }

    router.get(APIPath.cacheExport.route) { request, _ -> Response in
        let after = try request.uri.queryParameters.integer("after", default: 0, in: 0...Int64.max)
        let limit = Int(try request.uri.queryParameters.integer("limit", default: 500, in: 1...5000))
        return jsonResponse(try await cache().export(after: after, limit: limit))
    }

    router.post(APIPath.cacheImport.route) { request, context -> Response in
        let cache = try cache()
        let lines = try await decode([CacheExportLine].self, from: request)
        let count = try await cache.importEntries(lines)
        context.logAdminAction("cache entries imported", ["distill.lines": "\(lines.count)", "distill.count": "\(count)"])
        return jsonResponse(CacheCount(count: count))
    }

    router.get(APIPath.cacheStats.route) { _, _ -> Response in
        let cache = try cache()
        let counts = system.metrics.cacheStats
        let memory = cache.memory
        var scopes: [CacheScopeInfo] = []
        for (scope, entries, _) in cache.scopes() {
            scopes.append(scopeInfo(cache, scope, entries: entries, description: await system.completions.scopes.description(of: scope)))
        }
        return jsonResponse(
            CacheStats(
                entries: cache.count, indexed: memory.indexed, heldAnswers: memory.heldAnswers,
                heldAnswerBytes: memory.heldAnswerBytes, scopes: scopes,
                lookups: counts.lookups, bypasses: counts.bypasses, evictions: counts.evictions))
    }

    router.put(APIPath.cacheScope.route) { request, context -> Response in
        let cache = try cache()
        // A scope can be configured before it has entries: named by its key, or by a prefix of a
        // scope the teacher has answered in.
        let prefix = context.parameters.get("scope") ?? ""
        let scope: String
        do {
            scope = try cache.resolveScope(prefix)
        } catch DistillError.unknownScope {
            scope = try await Scope.resolve(prefix, amongTeacherLogScopesOf: system.store)
        }
        let settings = try await decode(CacheScopeSettings.self, from: request)
        if let threshold = settings.similarityThreshold, !(0...1).contains(threshold) {
            throw APIError.invalidRequest("'similarity_threshold' must be between 0 and 1.", code: "invalid_value", param: "similarity_threshold")
        }
        if let ttl = settings.ttlSeconds, ttl < 0 {
            throw APIError.invalidRequest("'ttl_seconds' must not be negative.", code: "invalid_value", param: "ttl_seconds")
        }
        if let maxError = settings.maxError, !(maxError > 0 && maxError < 1) {
            throw APIError.invalidRequest(
                "'max_error' must be strictly between 0 and 1 (a share of wrong answers among hits, e.g. 0.05).",
                code: "invalid_value", param: "max_error")
        }
        try await cache.configure(
            scope: scope, similarityThreshold: settings.similarityThreshold, ttlSeconds: settings.ttlSeconds,
            maxError: settings.maxError)
        let effective = cache.settings(for: scope)
        context.logAdminAction(
            "cache scope configured",
            ["distill.scope": "\(scope)", "distill.similarity_threshold": "\(effective.similarityThreshold)", "distill.ttl_seconds": "\(effective.ttlSeconds.map { "\($0)" } ?? "never")",
             "distill.max_error": "\(effective.maxError)"])
        let entries = cache.scopes().first { $0.scope == scope }?.entries ?? 0
        return jsonResponse(scopeInfo(cache, scope, entries: entries, description: await system.completions.scopes.description(of: scope)))
    }
}

/// A scope's settings in force and what its verified cache has done.
private func scopeInfo(_ cache: SemanticCache, _ scope: String, entries: Int, description: ScopeDescription?) -> CacheScopeInfo {
    let settings = cache.settings(for: scope)
    let verification = cache.verification(for: scope)
    return CacheScopeInfo(
        scope: scope, entries: entries, similarityThreshold: settings.similarityThreshold, ttlSeconds: settings.ttlSeconds,
        description: description, maxError: settings.maxError,
        verification: CacheScopeVerification(
            lookups: verification.lookups, hits: verification.hits, explorations: verification.explorations,
            audits: verification.audits, lessons: verification.lessons, wrongLessons: verification.wrongLessons,
            estimatedWrongRate: verification.estimatedWrongRate, wrongRateUpperBound: verification.wrongRateUpperBound))
}

private func info(_ entry: CacheEntryRecord, withMessages: Bool = false) -> CacheEntryInfo {
    CacheEntryInfo(
        id: entry.id ?? 0, scope: entry.scope, prompt: entry.prompt, answer: entry.answer, finishReason: entry.finishReason,
        createdAt: entry.createdAt, expiresAt: entry.expiresAt, lastHitAt: entry.lastHitAt, hits: entry.hits,
        messages: withMessages ? try? JSONValue.parse(Data(entry.messages.utf8)) : nil)
}

private func entryID(_ context: DistillRequestContext) throws(APIError) -> Int64 {
    guard let id = context.parameters.get("id").flatMap({ Int64($0) }) else {
        throw APIError.invalidRequest("The entry id must be an integer.", code: "invalid_value", param: "id")
    }
    return id
}

private func noSuchEntry(_ context: DistillRequestContext) -> APIError {
    APIError(status: 404, type: "invalid_request_error", code: "unknown_entry", message: "No cache entry \(context.parameters.get("id") ?? "").")
}

/// Decodes an admin request's JSON body (at most 32 MiB: imports come in batches).
func decode<T: Decodable>(_ type: T.Type, from request: Request) async throws -> T {
    let body = try await request.body.collect(upTo: 32 << 20)
    do {
        return try JSONDecoder.admin.decode(T.self, from: Data(buffer: body))
    } catch {
        throw APIError.invalidRequest("The body is not a valid \(T.self): \(error)", code: "invalid_json")
    }
}
