import ArgumentParser
import Embedding
import Foundation

struct EmbedBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "embed",
        abstract: "Embedding latency and throughput.",
        discussion: """
            Batch-1 latency (p50/p99, tokenization included) over the first --count queries, then batch throughput \
            over all queries in file order. With --stdin, embeds one text per input line instead and writes \
            {"text","embedding"} JSON Lines.
            """
    )

    @Option(help: "Model directory (default: $DISTILL_MODEL_DIR, else models/all-MiniLM-L6-v2).")
    var model: String?

    @Option(help: "CSV file whose first column holds the queries.")
    var queries = "../shared/data/banking77/test.csv"

    @Option(help: "Threads sharing each product.")
    var threads = 2

    @Option(help: "Kernel set: avx512, avx2 or portable (default: the best this CPU runs).")
    var kernels: String?

    @Option(help: "Queries timed one at a time for the latency percentiles.")
    var count = 1000

    @Option(help: "Texts per batch for the throughput measurement.")
    var batchSize = 32

    @Option(help: "Also measure the micro-batcher with this many concurrent single-text callers (0: skip).")
    var concurrent = 0

    @Option(help: "The micro-batcher's wait for a fuller batch, in milliseconds.")
    var maxWaitMs = 0.0

    @Flag(help: "Print one JSON object: threads, kernels, cpu, batch1_p50_ms, batch1_p99_ms, batch32_per_s.")
    var json = false

    @Flag(help: "Read texts from standard input, one per line, and write {\"text\",\"embedding\"} JSON Lines.")
    var stdin = false

    func validate() throws {
        guard threads >= 1, count >= 1, batchSize >= 1, concurrent >= 0, maxWaitMs >= 0 else {
            throw ValidationError("--threads, --count and --batch-size must be positive, --concurrent and --max-wait-ms not negative")
        }
        if let kernels {
            guard let set = KernelSet(rawValue: kernels) else {
                throw ValidationError("--kernels must be one of \(KernelSet.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            guard set.runs(on: .host) else {
                throw ValidationError("this CPU cannot run the \(set) kernels (\(KernelChoice.host))")
            }
        }
    }

    func run() async throws {
        let directory = model ?? ProcessInfo.processInfo.environment["DISTILL_MODEL_DIR"] ?? "models/all-MiniLM-L6-v2"
        let kernelSet = kernels.flatMap(KernelSet.init(rawValue:)) ?? KernelChoice.host.kernelSet
        let encoder = try BertEncoder(modelDirectory: URL(fileURLWithPath: directory), threads: threads, kernelSet: kernelSet)
        if stdin {
            try embedStandardInput(encoder)
            return
        }
        let loadedMemory = Self.residentMiB()
        let texts = try Self.firstColumn(ofCSV: URL(fileURLWithPath: queries))
        guard !texts.isEmpty else { throw ValidationError("no queries in \(queries)") }
        progress("\(encoder.identity), \(encoder.kernelSet) kernels on \(encoder.threadCount) threads, \(texts.count) queries")
        progress("CPU: \(KernelChoice.host)")

        // Warm up caches, the threads and the scratch buffers.
        for text in texts.prefix(50) { _ = encoder.embed([text]) }

        progress("batch 1: \(count) queries")
        var latencies: [Double] = []
        latencies.reserveCapacity(count)
        for i in 0..<count {
            let text = texts[i % texts.count]
            let start = ContinuousClock.now
            _ = encoder.embed([text])
            latencies.append(Self.milliseconds(ContinuousClock.now - start))
        }
        latencies.sort()
        let p50 = Self.percentile(latencies, 0.50)
        let p99 = Self.percentile(latencies, 0.99)

        progress("batch \(batchSize): \(texts.count) queries")
        let start = ContinuousClock.now
        for batchStart in stride(from: 0, to: texts.count, by: batchSize) {
            _ = encoder.embed(Array(texts[batchStart..<min(batchStart + batchSize, texts.count)]))
        }
        let batchPerSecond = Double(texts.count) / (Self.milliseconds(ContinuousClock.now - start) / 1000)

        var batcherPerSecond: Double?
        var batcherBatches = 0
        if concurrent > 0 {
            progress("micro-batcher: \(texts.count) queries from \(concurrent) concurrent callers, max wait \(maxWaitMs) ms")
            let batcher = BatchingEmbedder(encoder: encoder, maxBatchSize: batchSize, maxWait: .microseconds(Int(maxWaitMs * 1000)))
            let start = ContinuousClock.now
            await withTaskGroup(of: Void.self) { group in
                for caller in 0..<concurrent {
                    group.addTask {
                        for index in stride(from: caller, to: texts.count, by: concurrent) {
                            _ = await batcher.embed([texts[index]])
                        }
                    }
                }
            }
            batcherPerSecond = Double(texts.count) / (Self.milliseconds(ContinuousClock.now - start) / 1000)
            batcherBatches = batcher.statistics.batches
        }

        if json {
            let fields = [
                "\"threads\":\(threads)", "\"kernels\":\"\(encoder.kernelSet)\"",
                "\"cpu\":\(String(decoding: try JSONEncoder().encode(KernelChoice.host.cpuModel), as: UTF8.self))",
                "\"batch1_p50_ms\":\(Self.rounded(p50))", "\"batch1_p99_ms\":\(Self.rounded(p99))",
                "\"batch\(batchSize)_per_s\":\(Self.rounded(batchPerSecond))",
            ]
            print("{" + fields.joined(separator: ",") + "}")
        } else {
            print("threads            \(threads) (\(encoder.kernelSet) kernels; \(KernelChoice.host))")
            let mean = latencies.reduce(0, +) / Double(latencies.count)
            print(
                "batch 1            p50 \(Self.rounded(p50)) ms, p99 \(Self.rounded(p99)) ms, mean \(Self.rounded(mean)) ms "
                    + "over \(count) queries")
            print("batch \(batchSize)           \(Self.rounded(batchPerSecond)) texts/s over \(texts.count) queries")
            if let loadedMemory, let after = Self.residentMiB() {
                print(
                    "resident memory    \(loadedMemory.current) MiB with the model loaded, \(after.current) MiB after the runs, "
                        + "peak \(after.peak) MiB")
            }
            if let batcherPerSecond {
                print(
                    "micro-batcher      \(Self.rounded(batcherPerSecond)) texts/s, \(concurrent) callers, "
                        + "\(batcherBatches) batches (mean \(Self.rounded(Double(texts.count) / Double(batcherBatches))))")
            }
        }
    }

    private func embedStandardInput(_ encoder: BertEncoder) throws {
        let json = JSONEncoder()
        var pending: [String] = []
        func flush() throws {
            for (text, embedding) in zip(pending, encoder.embed(pending)) {
                // Written by hand to keep the documented key order; Float's description is its shortest round-trip form.
                let line = "{\"text\":\(String(decoding: try json.encode(text), as: UTF8.self)),\"embedding\":["
                    + embedding.map(\.description).joined(separator: ",") + "]}\n"
                FileHandle.standardOutput.write(Data(line.utf8))
            }
            pending.removeAll(keepingCapacity: true)
        }
        while let line = readLine(strippingNewline: true) {
            pending.append(line)
            if pending.count == batchSize { try flush() }
        }
        try flush()
    }

    private func progress(_ message: String) {
        FileHandle.standardError.write(Data("distill-bench embed: \(message)\n".utf8))
    }

    /// Resident set size now and at its peak, in MiB, from /proc/self/status (Linux).
    private static func residentMiB() -> (current: Int, peak: Int)? {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
        func kibibytes(_ key: String) -> Int? {
            guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix(key + ":") }) else { return nil }
            return line.split(separator: " ").dropFirst().first.flatMap { Int($0) }
        }
        guard let current = kibibytes("VmRSS"), let peak = kibibytes("VmHWM") else { return nil }
        return (current / 1024, peak / 1024)
    }

    private static func milliseconds(_ duration: Duration) -> Double {
        let (seconds, attoseconds) = duration.components
        return Double(seconds) * 1000 + Double(attoseconds) / 1e15
    }

    /// Nearest-rank percentile of sorted values.
    private static func percentile(_ sorted: [Double], _ p: Double) -> Double {
        sorted[min(sorted.count - 1, max(0, Int((p * Double(sorted.count)).rounded(.up)) - 1))]
    }

    private static func rounded(_ value: Double) -> Double { (value * 100).rounded() / 100 }

    /// The first field of every record after the header line (RFC 4180 quoting).
    static func firstColumn(ofCSV url: URL) throws -> [String] {
        enum State { case fieldStart, unquoted, quoted, quoteInQuoted }
        var values: [String] = []
        var field = ""
        var fieldIndex = 0
        var record = 0
        var state = State.fieldStart
        func endField() {
            if fieldIndex == 0 && record > 0 { values.append(field) }
            field = ""
            fieldIndex += 1
            state = .fieldStart
        }
        for character in try String(contentsOf: url, encoding: .utf8) {
            switch (state, character) {
            case (.quoted, "\""): state = .quoteInQuoted
            case (.quoted, _): field.append(character)
            case (.quoteInQuoted, "\""):  // an escaped quote
                field.append(character)
                state = .quoted
            case (.fieldStart, "\""): state = .quoted
            case (_, ","): endField()
            case (_, "\n"), (_, "\r\n"):
                endField()
                fieldIndex = 0
                record += 1
            default:
                field.append(character)
                state = .unquoted
            }
        }
        if state != .fieldStart || !field.isEmpty { endField() }
        return values
    }
}
