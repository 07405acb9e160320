import Foundation

/// The shareable `Embedder`: coalesces concurrent requests into batches for one `BertEncoder`, which it runs on
/// a dedicated thread, so CPU-heavy inference never occupies Swift's cooperative pool or NIO's event loops.
///
/// A batch starts when `maxBatchSize` texts are waiting, or `maxWait` after the oldest waiting request arrived,
/// whichever comes first. Requests that arrive while a batch runs make up the next one, so batches grow with
/// load even without waiting; hence the default wait of zero, which adds no latency to a lone request (with 4
/// or 32 closed-loop callers a 2 ms wait bought no throughput). Requests are never split; one with more than
/// `maxBatchSize` texts is a batch of its own, and a queued request is not cancelled with its task (it costs
/// milliseconds). Tokenization runs in the caller's task (microseconds), inference on the worker thread.
public final class BatchingEmbedder: Embedder {
    public struct Statistics: Sendable, Equatable {
        public var batches = 0
        public var texts = 0
    }

    public let identity: EmbeddingModelIdentity
    public let maxBatchSize: Int
    public let maxWait: Duration
    private let tokenizer: WordPieceTokenizer
    private let queue: RequestQueue

    /// Takes over `encoder`: from now on only the worker thread uses it.
    public init(encoder: sending BertEncoder, maxBatchSize: Int = 32, maxWait: Duration = .zero) {
        precondition(maxBatchSize >= 1 && maxWait >= .zero, "maxBatchSize must be positive and maxWait not negative")
        self.identity = encoder.identity
        self.tokenizer = encoder.tokenizer
        self.maxBatchSize = maxBatchSize
        self.maxWait = maxWait
        let queue = RequestQueue(maxBatchSize: maxBatchSize, maxWait: maxWait)
        self.queue = queue
        let owned = OwnedEncoder(encoder)
        let worker = Thread {
            while let batch = queue.nextBatch() {
                let embeddings = owned.encoder.embed(tokenIDs: batch.flatMap(\.tokenIDs))
                var next = 0
                for request in batch {
                    request.continuation.resume(returning: Array(embeddings[next..<next + request.tokenIDs.count]))
                    next += request.tokenIDs.count
                }
            }
        }
        worker.name = "distill-embedder"
        worker.start()
    }

    /// The worker finishes what is queued (nothing: callers keep `self` alive while they wait) and exits.
    deinit { queue.close() }

    /// Counts of batches run and texts embedded so far.
    public var statistics: Statistics { queue.statistics }

    public func seesWhole(_ text: String) -> Bool { tokenizer.seesWhole(text) }

    public func embed(_ texts: [String]) async -> [[Float]] {
        if texts.isEmpty { return [] }
        let tokenIDs = texts.map(tokenizer.encode)
        return await withCheckedContinuation { continuation in
            queue.enqueue(Request(tokenIDs: tokenIDs, continuation: continuation, arrival: .now))
        }
    }
}

/// Hands the non-`Sendable` encoder to the worker thread, its only user after `BatchingEmbedder.init`.
private final class OwnedEncoder: @unchecked Sendable {
    let encoder: BertEncoder
    init(_ encoder: sending BertEncoder) { self.encoder = encoder }
}

private struct Request: Sendable {
    let tokenIDs: [[Int32]]
    let continuation: CheckedContinuation<[[Float]], Never>
    let arrival: ContinuousClock.Instant
}

/// The waiting requests, between the callers and the worker thread.
private final class RequestQueue: @unchecked Sendable {
    // All mutable state is guarded by `condition`, which also wakes the worker.
    private let condition = NSCondition()
    private var pending: [Request] = []
    private var pendingTexts = 0
    private var closed = false
    private var counts = BatchingEmbedder.Statistics()
    private let maxBatchSize: Int
    private let maxWait: Duration

    init(maxBatchSize: Int, maxWait: Duration) {
        self.maxBatchSize = maxBatchSize
        self.maxWait = maxWait
    }

    var statistics: BatchingEmbedder.Statistics {
        condition.withLock { counts }
    }

    func enqueue(_ request: Request) {
        condition.withLock {
            let wasEmpty = pending.isEmpty
            pending.append(request)
            pendingTexts += request.tokenIDs.count
            // The worker waits either for a first request or for a full batch.
            if wasEmpty || pendingTexts >= maxBatchSize { condition.signal() }
        }
    }

    func close() {
        condition.withLock {
            closed = true
            condition.signal()
        }
    }

    /// Blocks until a batch is due and removes it from the queue; nil once closed and empty.
    func nextBatch() -> [Request]? {
        condition.withLock {
            while pending.isEmpty {
                if closed { return nil }
                condition.wait()
            }
            let deadline = pending[0].arrival + maxWait
            while pendingTexts < maxBatchSize && !closed {
                let remaining = ContinuousClock.now.duration(to: deadline)
                if remaining <= .zero { break }
                let (seconds, attoseconds) = remaining.components
                _ = condition.wait(until: Date(timeIntervalSinceNow: Double(seconds) + Double(attoseconds) * 1e-18))
            }
            var count = 0
            var taken = 0
            while taken < pending.count && (taken == 0 || count + pending[taken].tokenIDs.count <= maxBatchSize) {
                count += pending[taken].tokenIDs.count
                taken += 1
            }
            let batch = Array(pending[..<taken])
            pending.removeFirst(taken)
            pendingTexts -= count
            counts.batches += 1
            counts.texts += count
            return batch
        }
    }
}
