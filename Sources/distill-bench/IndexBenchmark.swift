import ArgumentParser

struct IndexBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "index", abstract: "HNSW build time, recall and queries/s.")
}
