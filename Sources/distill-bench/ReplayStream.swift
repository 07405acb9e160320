import Foundation
import SeededRandom

/// The replay's request stream: which query each request asks, by index into the unique queries.
///
/// Every unique query arrives once, in a seeded shuffled order (or in file order: `grouped`, for a file grouped by
/// intent, as traffic comes when a product launches one feature at a time). Between them come repeats of
/// queries already seen: at each step a repeat with probability `repeatRate` (so repeats are about
/// that share of the stream, `count / (1 − repeatRate)` requests in all), drawn with Zipf-like
/// popularity — each query has a seeded popularity rank r and weight 1/r^s, so a few queries are
/// asked again and again and most rarely, as in real traffic. Same seed, same stream.
struct ReplayStream {
    /// Query indices in arrival order.
    let order: [Int]
    /// How many of them are repeats of an earlier query.
    let repeats: Int

    init(uniqueQueries count: Int, repeatRate: Double, seed: UInt64, zipfExponent: Double = 1, grouped: Bool = false) {
        precondition(count >= 0 && (0..<1).contains(repeatRate) && zipfExponent >= 0)
        var random = SplitMix64(seed: seed)
        let shuffled = random.permutation(count)
        let arrivals = grouped ? Array(0..<count) : shuffled
        // Popularity is independent of arrival order: a popular query may first arrive late.
        let ranks = random.permutation(count).map { $0 + 1 }

        // Weights of the queries seen so far, by arrival position, in a Fenwick tree: a draw
        // proportional to weight among a growing set costs O(log n).
        var tree = FenwickTree(count: count)
        var order: [Int] = []
        order.reserveCapacity(Int(Double(count) / (1 - repeatRate)) + 16)
        var next = 0
        var repeats = 0
        while next < count {
            if next > 0, random.nextUnit() < repeatRate {
                // Rounding may land past the last query seen: clamp to it.
                let position = min(tree.find(random.nextUnit() * tree.total), next - 1)
                order.append(arrivals[position])
                repeats += 1
            } else {
                let query = arrivals[next]
                tree.add(1 / pow(Double(ranks[query]), zipfExponent), at: next)
                order.append(query)
                next += 1
            }
        }
        self.order = order
        self.repeats = repeats
    }
}

/// Prefix sums of non-negative weights with point updates and a search by cumulative weight.
struct FenwickTree {
    private var sums: [Double]
    private(set) var total = 0.0

    init(count: Int) { sums = Array(repeating: 0, count: count + 1) }

    mutating func add(_ weight: Double, at index: Int) {
        total += weight
        var i = index + 1
        while i < sums.count {
            sums[i] += weight
            i += i & -i
        }
    }

    /// The index whose weight interval holds `target` (0 ≤ target < total): the smallest i with
    /// weight[0...i] > target.
    func find(_ target: Double) -> Int {
        var position = 0
        var remaining = target
        var step = 1
        while step * 2 < sums.count { step *= 2 }
        while step > 0 {
            let candidate = position + step
            if candidate < sums.count, sums[candidate] <= remaining {
                position = candidate
                remaining -= sums[candidate]
            }
            step /= 2
        }
        return position
    }
}

/// SplitMix64: the stream depends only on the seed, on every platform.
extension SplitMix64 {
    /// 0..<count in a random order (Fisher–Yates, written out so the order never depends on the
    /// standard library's shuffle, which may change between Swift releases).
    mutating func permutation(_ count: Int) -> [Int] {
        var items = Array(0..<count)
        for i in stride(from: count - 1, to: 0, by: -1) {
            items.swapAt(i, Int(next() % UInt64(i + 1)))
        }
        return items
    }
}
