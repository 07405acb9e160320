import ArgumentParser
import Foundation
import Hummingbird
import TeacherSimulator

/// A stand-in OpenAI-compatible teacher for tests, the demo and benchmarks.
@main
struct TeacherSim: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "teacher-sim",
        abstract: "A stand-in OpenAI-compatible teacher that answers from a data set file.",
        discussion: """
            The last user message is looked up in the data set; unknown text gets the fallback answer.
            Prints "teacher-sim listening on http://HOST:PORT" on stdout once it accepts connections
            (with --port 0, PORT is the one the system chose). Faults can also be changed while it
            runs: PUT /sim/faults {"error_rate":1}. GET /sim/stats counts what it has done.
            """
    )

    @Option(help: "Port to listen on (0: any free port).") var port: Int = 9090
    @Option(help: "Address to listen on.") var host: String = "127.0.0.1"
    @Option(name: .customLong("gpt4-csv"), help: "Hard answers: a CSV with text,gold,teacher columns.")
    var gpt4CSV: String?
    @Option(name: .customLong("soft-jsonl"), help: "Soft labels: JSON Lines of {text, gold, top: [[answer, p], …]}.")
    var softJSONL: String?
    @Option(name: .customLong("latency-ms"), help: "Fixed latency per request.") var latencyMilliseconds: Double = 0
    @Option(name: .customLong("jitter-ms"), help: "Extra random latency, uniform in [0, N].") var jitterMilliseconds: Double = 0
    @Option(help: "Share of requests answered 500.") var errorRate: Double = 0
    @Option(help: "Share of requests answered 429 with Retry-After.") var rateLimitRate: Double = 0
    @Option(help: "Share of requests that hang.") var hangRate: Double = 0
    @Option(help: "Share of requests answered 200 with a malformed body.") var malformedRate: Double = 0
    @Option(help: "Share of requests whose connection closes in the middle of the answer.") var closeRate: Double = 0
    @Option(help: "Seed of the fault and latency draws.") var seed: UInt64 = 1
    @Option(help: "Retry-After seconds sent with a 429.") var retryAfter: Int = 1
    @Option(help: "How long a hanging request waits before answering 504.") var hangSeconds: Double = 600
    @Option(help: "The answer to text the data set does not know.") var fallbackAnswer: String?
    @Option(help: "Require 'Authorization: Bearer KEY'.") var apiKey: String?

    func validate() throws {
        guard (gpt4CSV == nil) != (softJSONL == nil) else {
            throw ValidationError("Give exactly one data set: --gpt4-csv FILE or --soft-jsonl FILE.")
        }
        for (name, rate) in [("error", errorRate), ("rate-limit", rateLimitRate), ("hang", hangRate), ("malformed", malformedRate), ("close", closeRate)] {
            guard (0...1).contains(rate) else { throw ValidationError("--\(name)-rate must be between 0 and 1.") }
        }
        guard errorRate + rateLimitRate + hangRate + malformedRate + closeRate <= 1 else {
            throw ValidationError("The fault rates add up to more than 1.")
        }
        guard (0...65535).contains(port) else { throw ValidationError("--port must be between 0 and 65535.") }
    }

    func run() async throws {
        let dataset = try gpt4CSV.map { try TeacherDataset.loadGPT4CSV(path: $0) }
            ?? TeacherDataset.loadSoftJSONL(path: softJSONL!)
        var options = SimulatorOptions()
        options.faults.latencyMilliseconds = latencyMilliseconds
        options.faults.jitterMilliseconds = jitterMilliseconds
        options.faults.errorRate = errorRate
        options.faults.rateLimitRate = rateLimitRate
        options.faults.hangRate = hangRate
        options.faults.malformedRate = malformedRate
        options.faults.closeRate = closeRate
        options.seed = seed
        options.retryAfterSeconds = retryAfter
        options.hangDuration = .milliseconds(Int64(hangSeconds * 1000))
        if let fallbackAnswer { options.fallbackAnswer = fallbackAnswer }
        options.apiKey = apiKey
        let simulator = TeacherSimulator(dataset: dataset, options: options)

        let host = self.host
        let app = Application(
            router: simulator.buildRouter(),
            configuration: .init(address: .hostname(host, port: port), serverName: "teacher-sim"),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? 0
                // Unbuffered, so that a parent process reading the pipe sees it at once.
                let line = "teacher-sim listening on http://\(host):\(port) (\(dataset.entries.count) answers)\n"
                FileHandle.standardOutput.write(Data(line.utf8))
            }
        )
        try await app.runService()
    }
}
