import CacheVerification
import Foundation

/// The answers of recently used cache entries, kept in memory up to a byte budget so that a hit on
/// one reads nothing from SQLite (with a read per hit, exact hits ran at a quarter of the rate:
/// docs/benchmarks.md); beyond the budget the least recently used go. A stored entry never
/// changes (a refresh stores a new one), so a held answer is never stale; entries the store
/// deletes are `remove`d, so that their memory goes with them.
struct HotAnswers {
    struct Answer: Equatable {
        var text: String
        var finishReason: String
        var expiresAt: Date?
        /// The entry's message: the verified cache compares it with the request's.
        var prompt = ""
        /// What the verified cache reads from `prompt`, once it has looked the entry up as a
        /// paraphrase's candidate (`setSignature`): an exact hit never needs it.
        var signature: TextSignature?

        func hasExpired(_ now: Date) -> Bool { expiresAt.map { $0 <= now } ?? false }

        /// What holding it costs, roughly: its texts and signature plus the bookkeeping around them.
        var bytes: Int {
            text.utf8.count + finishReason.utf8.count + prompt.utf8.count + (signature?.approximateBytes ?? 0) + 96
        }
    }

    let capacityBytes: Int
    private(set) var bytes = 0

    /// A doubly linked list over `nodes` from the most recently used (`newest`) to the least
    /// (`oldest`); `slots` finds an id's node; `vacant` lists nodes free for reuse.
    private struct Node {
        var id: Int64
        var answer: Answer
        var newer = -1
        var older = -1
    }
    private var nodes: [Node] = []
    private var slots: [Int64: Int] = [:]
    private var vacant: [Int] = []
    private var newest = -1
    private var oldest = -1

    init(capacityBytes: Int) {
        self.capacityBytes = capacityBytes
    }

    var count: Int { slots.count }

    /// The answer held for `id`, which becomes the most recently used.
    mutating func answer(for id: Int64) -> Answer? {
        guard let slot = slots[id] else { return nil }
        unlink(slot)
        linkAsNewest(slot)
        return nodes[slot].answer
    }

    /// Holds `answer` as the most recently used, letting the least recently used go to stay
    /// within the budget. An answer larger than the whole budget is not held.
    mutating func insert(_ answer: Answer, for id: Int64) {
        remove(id)
        guard answer.bytes <= capacityBytes else { return }
        while bytes + answer.bytes > capacityBytes, oldest >= 0 { remove(nodes[oldest].id) }
        let node = Node(id: id, answer: answer)
        let slot: Int
        if let reused = vacant.popLast() {
            slot = reused
            nodes[slot] = node
        } else {
            slot = nodes.count
            nodes.append(node)
        }
        slots[id] = slot
        bytes += answer.bytes
        linkAsNewest(slot)
    }

    /// Holds `signature` (of its prompt) with the answer held for `id`, if it is still held, as the
    /// most recently used, letting the least recently used go to stay within the budget. An
    /// entry's prompt never changes, so the signature is right for as long as the answer is held;
    /// it goes with the answer.
    mutating func setSignature(_ signature: TextSignature, for id: Int64) {
        guard let slot = slots[id], nodes[slot].answer.signature == nil else { return }
        unlink(slot)
        linkAsNewest(slot)
        nodes[slot].answer.signature = signature
        bytes += signature.approximateBytes
        while bytes > capacityBytes, oldest >= 0 { remove(nodes[oldest].id) }
    }

    mutating func remove(_ id: Int64) {
        guard let slot = slots.removeValue(forKey: id) else { return }
        unlink(slot)
        bytes -= nodes[slot].answer.bytes
        // Drop the text now rather than when the node is reused.
        nodes[slot].answer = Answer(text: "", finishReason: "", expiresAt: nil)
        vacant.append(slot)
    }

    private mutating func unlink(_ slot: Int) {
        let (newer, older) = (nodes[slot].newer, nodes[slot].older)
        if newer >= 0 { nodes[newer].older = older } else { newest = older }
        if older >= 0 { nodes[older].newer = newer } else { oldest = newer }
        nodes[slot].newer = -1
        nodes[slot].older = -1
    }

    private mutating func linkAsNewest(_ slot: Int) {
        nodes[slot].older = newest
        if newest >= 0 { nodes[newest].newer = slot }
        newest = slot
        if oldest < 0 { oldest = slot }
    }
}
