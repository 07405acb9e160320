/// Which of a scope's teacher answers a training holds out, and the order it sees them in: both decided by a
/// hash of each prompt, not by its row id.
///
/// Ids follow commit order, and among concurrent requests commit order follows timing, so "the newest 20% by
/// id" differed between two runs of the same traffic. A prompt's hash does not: the same answers give the same
/// split and the same training, whatever order they were committed in.
///
/// The held-out share is `max(share, minimumRows / rows)`, at most half. It only shrinks as the log grows, so the
/// fold of a later training lies inside every earlier one's: a prompt held out once is never trained on, and the
/// active student has never seen the holdout a candidate is compared with it on.
public struct HoldoutFold: Sendable {
    /// `distill.holdout_share`'s default.
    public static let defaultShare = 0.2

    /// `distill.holdout_share`.
    public var share: Double
    /// The gate judges a candidate, and compares it with the active student, on the holdout alone: on fewer than a
    /// few hundred answers its noise allowances would let almost anything through, or keep almost anything out.
    static let minimumRows = 250

    public init(share: Double) {
        self.share = share
    }

    /// The share of `rows` answers held out.
    func heldOutShare(rows: Int) -> Double {
        min(0.5, max(share, Double(Self.minimumRows) / Double(max(rows, 1))))
    }

    /// Whether a training on `rows` answers held `prompt` out.
    public func holdsOut(_ prompt: String, rows: Int) -> Bool {
        holdsOut(key: ContentKey.unit(prompt.utf8), rows: rows)
    }

    private func holdsOut(key: Double, rows: Int) -> Bool {
        key < heldOutShare(rows: rows)
    }

    /// `items` split into training and holdout (`holdsOut`), each ordered by prompt hash (then answer, for a prompt
    /// logged twice).
    public func split<Item>(_ items: [Item], prompt: (Item) -> String, answer: (Item) -> String) -> (training: [Item], holdout: [Item]) {
        let keyed = items.map { (key: ContentKey.unit(prompt($0).utf8), item: $0) }
            .sorted { ($0.key, answer($0.item)) < ($1.key, answer($1.item)) }
        let heldOut = keyed.map { holdsOut(key: $0.key, rows: items.count) }
        return (zip(keyed, heldOut).filter { !$1 }.map(\.0.item), zip(keyed, heldOut).filter { $1 }.map(\.0.item))
    }
}
