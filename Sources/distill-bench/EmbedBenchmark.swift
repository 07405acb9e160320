import ArgumentParser

struct EmbedBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "embed", abstract: "Embedding latency and throughput.")
}
