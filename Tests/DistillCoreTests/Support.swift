import DistillAPI
import DistillCore
import Embedding
import Foundation
import Logging
import Synchronization
import Teacher

/// A logger that drops everything.
let quietLogger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

/// The real MiniLM encoder of models/, behind the daemon's micro-batcher.
let sharedEmbedder: any Embedder = {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..").standardized
    let encoder = try! BertEncoder(modelDirectory: root.appendingPathComponent("models/all-MiniLM-L6-v2"))
    return BatchingEmbedder(encoder: encoder, maxBatchSize: 32, maxWait: .zero)
}()

/// A wall clock that moves only when told to.
final class ManualClock: WallClock {
    private let current: Mutex<Date>

    init(_ start: Date = Date(timeIntervalSince1970: 1_800_000_000)) { current = Mutex(start) }

    var now: Date { current.withLock { $0 } }

    func advance(by seconds: TimeInterval) { current.withLock { $0 += seconds } }
}

/// Counts what the domain reports.
final class RecordingMetrics: DomainMetrics {
    struct Counts {
        var lookups: [CacheLookupResult: Int] = [:]
        var bypasses: [CacheBypassReason: Int] = [:]
        var removals: [CacheRemovalReason: Int] = [:]
        var verifications: [CacheVerificationDecision: Int] = [:]
        /// Keyed by whether the answers differed.
        var lessons: [Bool: Int] = [:]
        var storeFailures: [StoreOperation: Int] = [:]
        var teacherCalls: [String: Int] = [:]
        var runs: [DistillRunOutcome: Int] = [:]
        var suspensions = 0
    }

    private let counts = Mutex(Counts())
    var snapshot: Counts { counts.withLock { $0 } }

    func recordCacheLookup(_ result: CacheLookupResult, duration: Duration) { counts.withLock { $0.lookups[result, default: 0] += 1 } }
    func recordCacheBypass(_ reason: CacheBypassReason) { counts.withLock { $0.bypasses[reason, default: 0] += 1 } }
    func recordCacheEvictions(_ reason: CacheRemovalReason, count: Int) { counts.withLock { $0.removals[reason, default: 0] += count } }
    func recordCacheVerification(scope: String, decision: CacheVerificationDecision, wrongHitRate: (estimate: Double, upperBound: Double)?) {
        counts.withLock { $0.verifications[decision, default: 0] += 1 }
    }
    func recordCacheLesson(scope: String, wrong: Bool) { counts.withLock { $0.lessons[wrong, default: 0] += 1 } }
    func setCacheEntries(_ count: Int) {}
    func recordStoreFailure(_ operation: StoreOperation) { counts.withLock { $0.storeFailures[operation, default: 0] += 1 } }
    func recordTeacherCall(outcome: String, duration: Duration, usage: Usage?) { counts.withLock { $0.teacherCalls[outcome, default: 0] += 1 } }
    func recordStudentDecision(_ action: Students.Decision.Action) {}
    func recordStudentAudit(agrees: Bool, scope: String, liveAgreement: Double) {}
    func recordStudentSuspension() { counts.withLock { $0.suspensions += 1 } }
    func recordDistillRun(_ outcome: DistillRunOutcome, trainingSeconds: Double) { counts.withLock { $0.runs[outcome, default: 0] += 1 } }
}

/// A teacher that answers every request with `answer` (or `answers[its last user message]`), or
/// fails with `failure`; no network.
final class ScriptedTeacher: TeacherUpstream {
    let address = "scripted:0"
    let answer: String
    let answers: [String: String]
    let failure: TeacherError?
    private let calls = Mutex(0)
    var callCount: Int { calls.withLock { $0 } }

    init(answer: String = "scripted", answers: [String: String] = [:], failure: TeacherError? = nil) {
        self.answer = answer
        self.answers = answers
        self.failure = failure
    }

    func answer(to request: ChatRequest) -> String { request.lastUserMessage.flatMap { answers[$0.text] } ?? answer }

    struct Stream: TeacherAnswerStream {
        let script: [TeacherStream.Event]
        struct Events: TeacherStreamEvents {
            var remaining: [TeacherStream.Event]
            mutating func next() async throws(TeacherError) -> TeacherStream.Event? { remaining.isEmpty ? nil : remaining.removeFirst() }
        }
        func events() -> Events { Events(remaining: script) }
    }

    func complete(_ request: ChatRequest, requestID: String) async throws(TeacherError) -> TeacherCompletion {
        calls.withLock { $0 += 1 }
        if let failure { throw failure }
        let answer = answer(to: request)
        return TeacherCompletion(
            answer: TeacherAnswer(text: answer, finishReason: "stop"),
            clientBody: ["choices": [["message": ["role": "assistant", "content": .string(answer)], "finish_reason": "stop"]]])
    }

    func stream(_ request: ChatRequest, requestID: String) async throws(TeacherError) -> Stream {
        calls.withLock { $0 += 1 }
        if let failure { throw failure }
        let answer = answer(to: request)
        return Stream(script: [
            .chunk(["choices": [["delta": ["content": .string(answer)]]]]), .finished(TeacherAnswer(text: answer, finishReason: "stop")),
        ])
    }

    func models() async throws(TeacherError) -> JSONValue { ["data": []] }
}
