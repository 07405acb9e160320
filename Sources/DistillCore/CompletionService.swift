import DistillAPI
import Embedding
import Foundation
import Logging
import Storage
import Teacher

/// Where an answer came from: the `x-distill-source` header.
public enum AnswerSource: String, Sendable, CaseIterable {
    case cache, student, teacher
}

/// What the request path knows about a request besides its body.
public struct RequestInfo: Sendable {
    public var requestID: String
    /// Whose scope the request belongs to.
    public var tenant: String
    /// The request's `Cache-Control` header: `no-cache` (don't read the cache), `no-store` (don't write it).
    public var cacheControl: String?
    /// The request's `x-distill-cache` header: `refresh` asks the teacher again and replaces the entry.
    public var cacheDirective: String?

    public init(requestID: String, tenant: String, cacheControl: String? = nil, cacheDirective: String? = nil) {
        self.requestID = requestID
        self.tenant = tenant
        self.cacheControl = cacheControl
        self.cacheDirective = cacheDirective
    }
}

/// A complete answer, ready to send.
public struct CompletionResponse: Sendable {
    public var body: Data
    public var source: AnswerSource
    /// The best cosine similarity the cache found for the request (nil when it was not consulted).
    public var similarity: Float?
    /// The student's calibrated confidence in its answer (nil when no student was consulted).
    public var confidence: Float?
}

/// The request path: cache, then the scope's student when it is confident, then the teacher; and
/// the teacher log and cache entries behind it.
///
/// A teacher answer is committed to the log (with its cache entry) before the client receives any
/// of it (for streams: before `[DONE]`); if the commit fails the client gets an error instead of
/// an answer that would be lost to training. The cache only ever saves work: when it fails, the
/// teacher answers.
public final class CompletionService: Sendable {
    let store: any DistillStore
    let teacher: any TeacherUpstream
    let cache: SemanticCache?
    let students: Students?
    let embedder: (any Embedder)?
    let temperatureCeiling: Double
    let clock: any WallClock
    let metrics: any DomainMetrics
    let logger: Logger
    /// Learns what each scope is from its first teacher answer.
    public let scopes: ScopeCatalog

    public init(
        store: any DistillStore, teacher: any TeacherUpstream, cache: SemanticCache?, students: Students?,
        embedder: (any Embedder)?, temperatureCeiling: Double, clock: any WallClock, metrics: any DomainMetrics,
        logger: Logger
    ) {
        self.scopes = ScopeCatalog(store: store)
        self.store = store
        self.teacher = teacher
        self.clock = clock
        self.cache = cache
        self.students = students
        self.embedder = embedder
        self.temperatureCeiling = temperatureCeiling
        self.metrics = metrics
        self.logger = logger
    }

    public func complete(_ request: ChatRequest, info: RequestInfo) async throws(DistillError) -> CompletionResponse {
        try await respond(await route(request, info: info), to: request, info: info)
    }

    private func respond(_ route: Route, to request: ChatRequest, info: RequestInfo) async throws(DistillError) -> CompletionResponse {
        switch route {
        case .cached(let hit):
            return cachedResponse(hit, of: request, info: info)
        case .student(let decision, let similarity):
            return studentResponse(decision, similarity: similarity, of: request, info: info)
        case .teacher(let plan):
            let started = ContinuousClock.now
            let completion: TeacherCompletion
            do {
                completion = try await teacher.complete(request, requestID: info.requestID)
            } catch {
                let failure = failedTeacherCall(error, started: started, info: info)
                guard let instead = answerWithoutTeacher(plan) else { throw failure }
                return try await respond(instead, to: request, info: info)
            }
            let latency = ContinuousClock.now - started
            metrics.recordTeacherCall(outcome: "success", duration: latency, usage: completion.answer.usage)
            try await record(completion.answer, of: request, plan: plan, info: info, latency: latency, streamed: false)
            return CompletionResponse(
                body: completion.clientBody.encoded(), source: .teacher, similarity: plan.bestSimilarity,
                confidence: plan.student?.prediction.confidence)
        }
    }

    /// An exact hit whose answer is held in memory, answered without suspending: the HTTP server
    /// answers these on its event loop (`ExactHitShortcut`). `admit` is asked once the hit is
    /// found, before anything is recorded. Nil, with nothing recorded, for any other request, or
    /// when `admit` refuses: `complete` answers it then.
    public func heldExactHit(_ request: ChatRequest, info: RequestInfo, admit: () -> Bool) -> CompletionResponse? {
        guard let cache, embedder != nil, let prompt = request.lastUserMessage?.text else { return nil }
        let policy = CachePolicy(request: request, info: info, temperatureCeiling: temperatureCeiling)
        guard policy.read else { return nil }
        let started = ContinuousClock.now
        let scope = Scope(of: request, tenant: info.tenant)
        guard case .held(let hit) = cache.exactLookup(scope: scope, key: SemanticCache.exactKey(prompt), now: clock.now),
            admit()
        else { return nil }
        for reason in policy.bypassReasons { metrics.recordCacheBypass(reason) }
        served(hit, by: cache, started: started)
        return cachedResponse(hit, of: request, info: info)
    }

    /// Counts an exact hit that is being served.
    private func served(_ hit: CacheHit, by cache: SemanticCache, started: ContinuousClock.Instant) {
        cache.countHit(hit.entryID, now: clock.now)
        metrics.recordCacheLookup(.exactHit, duration: .now - started)
    }

    func cachedResponse(_ hit: CacheHit, of request: ChatRequest, info: RequestInfo) -> CompletionResponse {
        CompletionResponse(
            body: completion(hit.answer, finishReason: hit.finishReason, of: request, info: info), source: .cache,
            similarity: hit.similarity)
    }

    func cachedStream(_ hit: CacheHit, of request: ChatRequest, info: RequestInfo) -> CompletionStream {
        CompletionStream(
            source: .cache, similarity: hit.similarity, confidence: nil,
            body: replay(hit.answer, finishReason: hit.finishReason, of: request, info: info))
    }

    func studentResponse(_ decision: Students.Decision, similarity: Float?, of request: ChatRequest, info: RequestInfo)
        -> CompletionResponse
    {
        CompletionResponse(
            body: completion(decision.prediction.answer, finishReason: "stop", of: request, info: info), source: .student,
            similarity: similarity, confidence: decision.prediction.confidence)
    }

    func studentStream(_ decision: Students.Decision, similarity: Float?, of request: ChatRequest, info: RequestInfo)
        -> CompletionStream
    {
        CompletionStream(
            source: .student, similarity: similarity, confidence: decision.prediction.confidence,
            body: replay(decision.prediction.answer, finishReason: "stop", of: request, info: info))
    }

    /// A completion whose answer distill already has (cached, or the student's): no tokens billed.
    func completion(_ answer: String, finishReason: String, of request: ChatRequest, info: RequestInfo) -> Data {
        ChatCompletion.ownAnswer(
            id: "chatcmpl-\(info.requestID)", created: Int64(clock.now.timeIntervalSince1970), model: request.model,
            content: answer, finishReason: finishReason)
    }

    /// The same, as a stream of server-sent events ending with `[DONE]`.
    func replay(_ answer: String, finishReason: String, of request: ChatRequest, info: RequestInfo) -> CompletionStream.Body {
        let chunks = ChatCompletionChunk.stream(
            id: "chatcmpl-\(info.requestID)", created: Int(clock.now.timeIntervalSince1970), model: request.model,
            pieces: [answer], finishReason: finishReason,
            usage: request.wantsStreamUsage ? Usage(promptTokens: 0, completionTokens: 0) : nil)
        let events = chunks.map { ServerSentEvent(data: String(decoding: JSONValue.encode($0), as: UTF8.self)) }
        return .replay(events + [ServerSentEvent(data: "[DONE]")])
    }

    /// Opens a streamed answer. Throws before anything is sent when the teacher cannot start one.
    public func stream(_ request: ChatRequest, info: RequestInfo) async throws(DistillError) -> CompletionStream {
        try await openStream(await route(request, info: info), to: request, info: info)
    }

    private func openStream(_ route: Route, to request: ChatRequest, info: RequestInfo) async throws(DistillError) -> CompletionStream {
        switch route {
        case .cached(let hit):
            return cachedStream(hit, of: request, info: info)
        case .student(let decision, let similarity):
            return studentStream(decision, similarity: similarity, of: request, info: info)
        case .teacher(let plan):
            let started = ContinuousClock.now
            do {
                let upstream = try await teacher.stream(request, requestID: info.requestID)
                let relay = TeacherRelay(service: self, request: request, plan: plan, info: info, started: started, upstream: upstream)
                return CompletionStream(
                    source: .teacher, similarity: plan.bestSimilarity, confidence: plan.student?.prediction.confidence,
                    body: .teacher(relay))
            } catch {
                let failure = failedTeacherCall(error, started: started, info: info)
                guard let instead = answerWithoutTeacher(plan) else { throw failure }
                return try await openStream(instead, to: request, info: info)
            }
        }
    }

    /// What serves a request the teacher could not answer, when it was asked only to check or to learn: an
    /// audit's answer (the cache's or the student's), which was within its bound and would otherwise have been
    /// served; and for a lookup the cache explored, the student's confident answer, as for any miss. A failing
    /// teacher turns the audit or the exploration into none rather than into an error for the client. Nil for
    /// any other request; never `.teacher`.
    private func answerWithoutTeacher(_ plan: TeacherPlan) -> Route? {
        if let hit = plan.lesson?.auditedHit {
            cache?.countHit(hit.entryID, now: clock.now)
            return .cached(hit)
        }
        var decision = plan.student
        if decision == nil, plan.lesson?.explores == true, let vector = plan.vector {
            // An exploration skipped the student (`route`): ask it now.
            decision = students?.decide(scope: plan.scope.key, vector: vector)
        }
        // A confident answer is served (a planned one never reaches the teacher); so is one picked for an audit.
        guard let decision, [.answer, .audit].contains(decision.action) else { return nil }
        return .student(decision, similarity: plan.bestSimilarity)
    }

    // MARK: - Routing

    enum Route {
        case cached(CacheHit)
        /// The student answers; with the cache's best similarity.
        case student(Students.Decision, similarity: Float?)
        case teacher(TeacherPlan)
    }

    /// What to do with a teacher answer once it arrives.
    struct TeacherPlan {
        var scope: Scope
        /// The last user message's embedding, when the request path computed one: logged with the
        /// exchange (training data for the student) and, if `writeCache`, the cached entry's vector.
        var vector: [Float]?
        var writeCache = false
        /// False when the message is longer than the embedder's window: its entry is for exact hits only.
        var indexEntry = true
        var bestSimilarity: Float?
        /// What the scope's student made of the request, when it has one: an audit compares its
        /// answer with the teacher's, and an answer none of its classes may be a new one.
        var student: Students.Decision?
        /// What the teacher's answer teaches the verified cache, when the lookup had a candidate.
        var lesson: CacheLesson?
    }

    /// Decides where the answer comes from: an exact hit, else a semantic hit the verified cache
    /// allows, else (unless the cache explores) a confident student, else the teacher. Requests that
    /// may not read the cache may not read the student either.
    func route(_ request: ChatRequest, info: RequestInfo) async -> Route {
        let scope = Scope(of: request, tenant: info.tenant)
        guard cache != nil || students != nil, let embedder, let prompt = request.lastUserMessage?.text else {
            return .teacher(TeacherPlan(scope: scope))
        }
        let policy = CachePolicy(request: request, info: info, temperatureCeiling: temperatureCeiling)
        for reason in policy.bypassReasons { metrics.recordCacheBypass(reason) }
        // An exact hit needs neither the tokenizer nor the embedder: it is looked up first, in
        // memory as `heldExactHit` does, then in the store for an answer not held.
        let started = ContinuousClock.now
        if let cache, policy.read {
            do {
                let hit: CacheHit?
                switch cache.exactLookup(scope: scope, key: SemanticCache.exactKey(prompt), now: clock.now) {
                case .held(let held): hit = held
                case .stored(let id): hit = try await cache.storedExactHit(id: id, now: clock.now)
                case .none: hit = nil
                }
                if let hit {
                    served(hit, by: cache, started: started)
                    return .cached(hit)
                }
            } catch {
                return cacheLookupFailed(error, started: started, scope: scope, info: info)
            }
        }
        // Two prompts that differ only beyond the window have the same vector: neither a paraphrase
        // nor the student may answer from the part the embedder saw.
        let seenWhole = embedder.seesWhole(prompt)
        if policy.read && !seenWhole { metrics.recordCacheBypass(.beyondWindow) }
        var plan = TeacherPlan(scope: scope, writeCache: cache != nil && policy.write, indexEntry: seenWhole)
        if let cache, policy.read {
            do {
                if seenWhole {
                    // One embedding serves the lookup, the student and the entry the answer is cached under.
                    let vector = try await embedder.embed([prompt])[0]
                    let lookup = try await cache.semanticHit(scope: scope, prompt: prompt, vector: vector, now: clock.now)
                    let result: CacheLookupResult = lookup.hit != nil ? .semanticHit : lookup.lesson?.explores == true ? .explore : .miss
                    metrics.recordCacheLookup(result, duration: .now - started)
                    if let hit = lookup.hit { return .cached(hit) }
                    (plan.vector, plan.bestSimilarity, plan.lesson) = (vector, lookup.best, lookup.lesson)
                } else {
                    metrics.recordCacheLookup(.miss, duration: .now - started)
                }
            } catch {
                return cacheLookupFailed(error, started: started, scope: scope, info: info)
            }
        }
        let vector: [Float]
        if let computed = plan.vector {
            vector = computed
        } else {
            // The teacher log keeps the vector even when the cache is bypassed: the student learns from it.
            do {
                vector = try await embedder.embed([prompt])[0]
            } catch {
                logger.warning(
                    "embedding failed; asking the teacher",
                    metadata: ["distill.request_id": "\(info.requestID)", "distill.error": "\(error)"])
                return .teacher(TeacherPlan(scope: scope))
            }
            plan.vector = vector
        }
        // A lookup the cache explores is the teacher's to answer: that is how the cache learns.
        if policy.read, seenWhole, plan.lesson?.explores != true, let students,
            let decision = students.decide(scope: scope.key, vector: vector)
        {
            if case .answer = decision.action { return .student(decision, similarity: plan.bestSimilarity) }
            plan.student = decision
        }
        return .teacher(plan)
    }

    /// The cache failed: the teacher answers, and nothing is cached.
    private func cacheLookupFailed(_ error: any Error, started: ContinuousClock.Instant, scope: Scope, info: RequestInfo) -> Route {
        metrics.recordCacheLookup(.error, duration: .now - started)
        logger.warning(
            "cache lookup failed; asking the teacher",
            metadata: ["distill.request_id": "\(info.requestID)", "distill.error": "\(error)"])
        return .teacher(TeacherPlan(scope: scope))
    }

    func failedTeacherCall(_ error: TeacherError, started: ContinuousClock.Instant, info: RequestInfo) -> DistillError {
        metrics.recordTeacherCall(outcome: error.outcome, duration: .now - started, usage: nil)
        logger.warning(
            "teacher call failed",
            metadata: [
                "distill.request_id": "\(info.requestID)", "distill.teacher": "\(teacher.address)", "distill.outcome": "\(error.outcome)",
                "distill.error": "\(error)",
            ])
        return .teacher(error)
    }

    // MARK: - Recording

    /// Commits the exchange to the teacher log, with its cache entry when the plan says so and the
    /// answer is plain text that finished; the answer may be released once this returns.
    func record(
        _ answer: TeacherAnswer, of request: ChatRequest, plan: TeacherPlan, info: RequestInfo, latency: Duration,
        streamed: Bool
    ) async throws(DistillError) {
        let now = clock.now
        let exchange = TeacherLogRecord(
            createdAt: now, requestID: info.requestID, scope: plan.scope.key, model: request.model,
            messages: JSONValue.array(request.messages.map(\.raw)).encodedString,
            parameters: JSONValue.object(request.body.filter { $0.key != "messages" }).encodedString,
            prompt: request.lastUserMessage?.text ?? "", answer: answer.text,
            topLogprobs: answer.topLogprobs.map { String(decoding: JSONValue.encode($0), as: UTF8.self) },
            promptTokens: answer.usage?.promptTokens, completionTokens: answer.usage?.completionTokens,
            latencyMilliseconds: latency / .milliseconds(1), streamed: streamed, vector: plan.vector)
        var entry: CacheEntryRecord?
        if let cache, plan.writeCache, let vector = plan.vector, let prompt = request.lastUserMessage?.text,
            !answer.text.isEmpty, let finishReason = answer.finishReason, ["stop", "length"].contains(finishReason)
        {
            entry = cache.makeEntry(
                scope: plan.scope, request: request, prompt: prompt, answer: answer.text, finishReason: finishReason,
                vector: plan.indexEntry ? vector : nil, now: now)
        }
        let commit: TeacherExchangeCommit
        do {
            commit = try await store.appendTeacherExchange(exchange, cacheEntry: entry)
        } catch {
            metrics.recordStoreFailure(.teacherLog)
            logger.error(
                "cannot record a teacher answer; it is withheld from the client",
                metadata: ["distill.request_id": "\(info.requestID)", "distill.error": "\(error)"])
            throw .answerNotRecorded
        }
        if let cache, let entry, let entryID = commit.entryID {
            await cache.didCommit(entryID: entryID, replacing: commit.replacedEntryID, entry: entry)
        }
        if let cache, let lesson = plan.lesson { await cache.learn(lesson, teacherAnswer: answer.text) }
        if let students, let decision = plan.student {
            await students.recordTeacherAnswer(decision, vector: plan.vector, teacherAnswer: answer.text)
        }
        await scopes.note(plan.scope, request: request, tenant: info.tenant)
    }
}

/// An answer being streamed to the client: `run` sends it event by event.
public struct CompletionStream: Sendable {
    public let source: AnswerSource
    /// The best cosine similarity the cache found for the request (nil when it was not consulted).
    public let similarity: Float?
    /// The student's calibrated confidence in its answer (nil when no student was consulted).
    public let confidence: Float?
    let body: Body

    /// What the client is sent: server-sent events, or, once the stream has started, the error that ends it.
    public enum Event: Sendable {
        case event(ServerSentEvent)
        case failure(DistillError)
    }

    enum Body: Sendable {
        /// An answer distill already has, replayed.
        case replay([ServerSentEvent])
        case teacher(TeacherRelay)
    }

    /// Sends every event through `send`; returns when the stream is over (or the client gone).
    public func run(send: (Event) async throws -> Void) async {
        switch body {
        case .replay(let events):
            for event in events {
                do { try await send(.event(event)) } catch { return }
            }
        case .teacher(let relay):
            await relay.run(send: send)
        }
    }
}

/// Relays a teacher's stream to the client and records the answer before the final `[DONE]`. If
/// the client goes away, the rest of the answer is still read and recorded; if the teacher breaks
/// off, the client gets an error event and no `[DONE]`.
struct TeacherRelay: Sendable {
    let service: CompletionService
    let request: ChatRequest
    let plan: CompletionService.TeacherPlan
    let info: RequestInfo
    let started: ContinuousClock.Instant
    let upstream: any TeacherAnswerStream

    func run(send: (CompletionStream.Event) async throws -> Void) async {
        var clientGone = false
        func deliver(_ event: CompletionStream.Event) async {
            guard !clientGone else { return }
            do {
                try await send(event)
            } catch {
                clientGone = true
            }
        }
        var events = upstream.events()
        do throws(DistillError) {
            while true {
                let event: TeacherStream.Event?
                do {
                    event = try await events.next()
                } catch {
                    throw service.failedTeacherCall(error, started: started, info: info)
                }
                switch event {
                case .chunk(let chunk)?:
                    await deliver(.event(ServerSentEvent(data: chunk.encodedString)))
                case .finished(let answer)?:
                    let latency = ContinuousClock.now - started
                    service.metrics.recordTeacherCall(outcome: "success", duration: latency, usage: answer.usage)
                    try await service.record(answer, of: request, plan: plan, info: info, latency: latency, streamed: true)
                    await deliver(.event(ServerSentEvent(data: "[DONE]")))
                case nil:
                    return
                }
            }
        } catch {
            await deliver(.failure(error))
        }
    }
}

extension JSONValue {
    /// Compact JSON of an encodable value (the wire types always encode), with sorted keys and
    /// slashes as they are: the rules of distill's other answers (`JSONWriter`), so that a
    /// replayed stream's chunks are the same bytes every time.
    static func encode(_ value: some Encodable) -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(value)) ?? Data("null".utf8)
    }
}
