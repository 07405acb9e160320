import Testing

@testable import Student

@Suite struct HoldoutFoldTests {
    struct Row: Equatable {
        var prompt: String
        var answer: String
    }

    static func rows(_ count: Int) -> [Row] {
        (0..<count).map { Row(prompt: "query \($0)", answer: "intent \($0 % 7)") }
    }

    static func split(_ rows: [Row], share: Double = 0.2) -> (training: [Row], holdout: [Row]) {
        HoldoutFold(share: share).split(rows, prompt: \.prompt, answer: \.answer)
    }

    @Test func theSplitAndItsOrderDoNotDependOnCommitOrder() {
        let rows = Self.rows(1000)
        // Another commit order: the same rows, each round of 64 reversed.
        let reordered = stride(from: 0, to: rows.count, by: 64).flatMap { rows[$0..<min($0 + 64, rows.count)].reversed() }
        let first = Self.split(rows), second = Self.split(reordered)
        #expect(first.training == second.training && first.holdout == second.holdout)
        #expect(first.training.count + first.holdout.count == 1000)
        #expect(Set(first.holdout.map(\.prompt)).isDisjoint(with: first.training.map(\.prompt)))
    }

    @Test func atLeast250AreHeldOutAndAtMostHalf() {
        let fold = HoldoutFold(share: 0.2)
        #expect(fold.heldOutShare(rows: 10_000) == 0.2)
        #expect(fold.heldOutShare(rows: 1000) == 0.25)
        #expect(fold.heldOutShare(rows: 200) == 0.5)
        // A prompt's hash decides, so the counts are near the share, not exact.
        for (count, expected) in [(10_000, 2000), (525, 250), (200, 100)] {
            let held = Self.split(Self.rows(count)).holdout.count
            #expect(abs(held - expected) <= expected / 8, "\(held) of \(count) held out")
        }
    }

    @Test func whetherAPromptWasHeldOutIsKnownFromTheCountAlone() {
        // The distiller tells which answers the active student held out from how many it read.
        let rows = Self.rows(1000), fold = HoldoutFold(share: 0.2)
        let holdout = Set(Self.split(rows).holdout.map(\.prompt))
        #expect(rows.allSatisfy { fold.holdsOut($0.prompt, rows: 1000) == holdout.contains($0.prompt) })
    }

    @Test func aPromptHeldOutOnceIsHeldOutAsTheLogGrows() {
        let rows = Self.rows(5000)
        let early = Set(Self.split(Array(rows.prefix(525))).holdout.map(\.prompt))
        let late = Self.split(rows)
        // The later holdout, among the early rows, is within the early holdout: no version trained on it.
        let lateAmongEarly = Set(late.holdout.map(\.prompt)).intersection(rows.prefix(525).map(\.prompt))
        #expect(!lateAmongEarly.isEmpty && lateAmongEarly.isSubset(of: early))
        #expect(Set(late.training.map(\.prompt)).isDisjoint(with: late.holdout.map(\.prompt)))
    }

    @Test func theKeyIsTheSha256OfThePrompt() {
        // Stored logs are split by it: a change of hash would move prompts between folds.
        #expect(ContentKey.unit("where is my card".utf8) == Double(0x32a9_ac6d_9e94_5a2b >> 11) / 0x1p53)
    }
}
