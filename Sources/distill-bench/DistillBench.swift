import ArgumentParser

@main
struct DistillBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "distill-bench",
        abstract: "Benchmarks for distill: embedding, vector index, replay, a PostgreSQL cluster; and its reliability runs, soak and chaos.",
        subcommands: [
            EmbedBenchmark.self, IndexBenchmark.self, CacheThresholdBenchmark.self, CachePrecisionBenchmark.self, StudentBenchmark.self, ReplayBenchmark.self,
            VersionsBenchmark.self, SoakBenchmark.self, ChaosBenchmark.self, ClusterBenchmark.self,
        ]
    )
}
