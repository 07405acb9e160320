import ArgumentParser
import Foundation
import VectorIndex

/// Builds an HNSW graph over a deterministic clustered data set and measures build time, memory,
/// and recall@10 / single-thread queries per second over a sweep of efSearch, against exact
/// (brute-force) neighbours. `--dump DIR` writes the vectors and the ground truth for
/// `scripts/bench-index-hnswlib.py`, which runs hnswlib on exactly the same data.
struct IndexBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "index", abstract: "HNSW build time, recall and queries/s.")

    @Option(help: "Vectors in the index.")
    var n = 100_000
    @Option(help: "Held-out query vectors.")
    var queries = 1_000
    @Option(help: "Vector dimension.")
    var dim = 384
    @Option(help: "HNSW links per node (2m on layer 0).")
    var m = 16
    @Option(name: .customLong("ef-construction"), help: "Candidate list size while building.")
    var efConstruction = 200
    @Option(parsing: .upToNextOption, help: "efSearch values to sweep.")
    var ef: [Int] = [10, 16, 24, 32, 48, 64, 96, 128, 256]
    @Option(help: "Passes over the queries per efSearch; the fastest is reported.")
    var repeats = 3
    @Option(help: "Seed of the data set.")
    var seed: UInt64 = 42
    @Flag(help: "Print one JSON object instead of a table.")
    var json = false
    @Option(help: "Directory to write base.f32, queries.f32 (row-major little-endian float32) and truth.i32 (exact top 10 per query) into.")
    var dump: String?

    struct Report: Codable {
        struct Point: Codable {
            var ef: Int
            var recall10: Double
            var qps: Double
        }

        var n: Int
        var dim: Int
        var queries: Int
        var m: Int
        var ef_construction: Int
        var build_threads: Int
        var build_s: Double
        /// Bytes the index accounts for, per entry.
        var bytes_per_entry: Double
        /// Growth of the resident set during the build, per entry (includes allocator overhead).
        var rss_bytes_per_entry: Double
        var sweep: [Point]
    }

    func run() async throws {
        let k = 10
        log("generating \(n) + \(queries) clustered vectors of dimension \(dim)")
        let generator = ClusteredVectors(dimension: dim, seed: seed)
        let base = generator.generate(count: n, stream: 1)
        let queryData = generator.generate(count: queries, stream: 2)
        let rows = (0..<n).map { Array(base[($0 * dim)..<(($0 + 1) * dim)]) }
        let queryRows = (0..<queries).map { Array(queryData[($0 * dim)..<(($0 + 1) * dim)]) }

        log("exact top \(k) of every query (brute force)")
        let exact = ScopeIndex(configuration: IndexConfiguration(model: "distill-bench", dimension: dim, promotionThreshold: .max))
        for (i, row) in rows.enumerated() { exact.insert(id: Int64(i), vector: row) }
        let truth = queryRows.map { exact.search($0, k: k).map(\.id) }

        if let dump {
            try FileManager.default.createDirectory(atPath: dump, withIntermediateDirectories: true)
            try write(base, to: "\(dump)/base.f32")
            try write(queryData, to: "\(dump)/queries.f32")
            try write(truth.flatMap { $0.map(Int32.init) }, to: "\(dump)/truth.i32")
        }

        log("building: m \(m), efConstruction \(efConstruction), one thread")
        let configuration = IndexConfiguration(
            model: "distill-bench", dimension: dim,
            hnsw: HNSWParameters(m: m, efConstruction: efConstruction),
            promotionThreshold: 0
        )
        let residentBefore = residentBytes()
        let clock = ContinuousClock()
        let started = clock.now
        let index = ScopeIndex(configuration: configuration)
        for (i, row) in rows.enumerated() {
            index.insert(id: Int64(i), vector: row)
            if (i + 1) % 20_000 == 0 { log("  \(i + 1) inserted, \(seconds(clock.now - started)) s") }
        }
        let buildTime = seconds(clock.now - started)
        let residentGrowth = residentBytes() - residentBefore

        var sweep: [Report.Point] = []
        for ef in ef {
            var hits = 0
            var best = Double.infinity
            for pass in 0..<repeats {
                let start = clock.now
                var results: [[SearchResult]] = []
                results.reserveCapacity(queries)
                for query in queryRows { results.append(index.search(query, k: k, ef: ef)) }
                best = min(best, seconds(clock.now - start))
                if pass == 0 {
                    for (found, expected) in zip(results, truth) {
                        hits += found.filter { expected.contains($0.id) }.count
                    }
                }
            }
            let point = Report.Point(ef: ef, recall10: Double(hits) / Double(k * queries), qps: Double(queries) / best)
            log("  ef \(ef): recall@10 \(point.recall10), \(Int(point.qps)) queries/s")
            sweep.append(point)
        }

        let report = Report(
            n: n, dim: dim, queries: queries, m: m, ef_construction: efConstruction, build_threads: 1,
            build_s: buildTime,
            bytes_per_entry: Double(index.statistics.bytes) / Double(n),
            rss_bytes_per_entry: Double(residentGrowth) / Double(n),
            sweep: sweep
        )
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        } else {
            print("n \(n), dim \(dim), m \(m), efConstruction \(efConstruction)")
            print("build \(String(format: "%.2f", buildTime)) s (1 thread), \(Int(report.bytes_per_entry)) bytes/entry (resident: \(Int(report.rss_bytes_per_entry)))")
            print("ef      recall@10   queries/s")
            for point in sweep {
                print(String(format: "%-7d %-11.4f %.0f", point.ef, point.recall10, point.qps))
            }
        }
    }

    private func log(_ message: String) {
        FileHandle.standardError.write(Data("index: \(message)\n".utf8))
    }

    private func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) * 1e-18
    }

    private func write<T>(_ values: [T], to path: String) throws {
        try values.withUnsafeBytes { try Data($0).write(to: URL(fileURLWithPath: path)) }
    }

    /// The resident set size, from /proc/self/statm (0 where there is none).
    private func residentBytes() -> Int {
        guard let statm = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8),
              let pages = statm.split(separator: " ").dropFirst().first.flatMap({ Int($0) })
        else { return 0 }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }
}
