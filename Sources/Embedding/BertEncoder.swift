import CPUKernels
import Crypto
import Foundation

/// A BERT sentence encoder with mean pooling and L2 normalization: all-MiniLM-L6-v2 as sentence-transformers
/// runs it, in fp32.
///
/// Batches are packed, not padded: the tokens of all texts are rows of one matrix, so every dense layer is one
/// product over real tokens only, and attention runs per text over its own rows, which is what the attention
/// mask of a padded batch achieves.
///
/// The products run on the kernels of `CPUKernels` for the instruction set the CPU has (`KernelChoice`), with
/// the weights packed for them once at load: a general BLAS re-packs them on every call, which was 46% of the
/// time of a one-text batch.
///
/// Holds mutable scratch buffers, so one instance serves one caller at a time: it is deliberately not
/// `Sendable`. `BatchingEmbedder` owns one on a dedicated thread and is the shareable front.
public final class BertEncoder {
    public let identity: EmbeddingModelIdentity
    public let configuration: BertConfiguration
    public let tokenizer: WordPieceTokenizer
    /// Most token rows in one forward pass; bounds the scratch memory. Larger batches run in several passes.
    public let maxTokensPerPass: Int
    /// The instruction set the products run on.
    public let kernelSet: KernelSet
    /// Threads sharing each product, the caller's included.
    public var threadCount: Int { team.size }

    private let weights: Weights
    private let scratch: Scratch
    private let team: ThreadTeam

    /// Loads `config.json`, `vocab.txt` and `model.safetensors` from a sentence-transformers model directory.
    /// - Parameters:
    ///   - name: the identity's name; defaults to the directory's name.
    ///   - maxSequenceLength: tokens per text including `[CLS]` and `[SEP]` (sentence-transformers' window is 256).
    ///   - threads: threads sharing each product (default: every processor). On cores shared with other work,
    ///     1 is the safer setting: the threads of one product wait for each other.
    ///   - kernelSet: the instruction set; the CPU's best (`KernelChoice.host`) unless a test or benchmark picks
    ///     another that this CPU can run.
    public init(
        modelDirectory: URL, name: String? = nil, maxSequenceLength: Int = 256, maxTokensPerPass: Int = 1024,
        threads: Int = ProcessInfo.processInfo.activeProcessorCount, kernelSet: KernelSet = KernelChoice.host.kernelSet
    ) throws(ModelLoadError) {
        precondition(kernelSet.runs(on: .host), "this CPU cannot run the \(kernelSet) kernels")
        precondition(threads >= 1, "threads must be positive")
        let configuration = try BertConfiguration(contentsOf: modelDirectory.appendingPathComponent("config.json"))
        try Self.checkTokenizerConfiguration(modelDirectory.appendingPathComponent("tokenizer_config.json"))
        let tokenizer = try WordPieceTokenizer(
            vocabularyFile: modelDirectory.appendingPathComponent("vocab.txt"), maxLength: maxSequenceLength)
        guard tokenizer.vocabularySize == configuration.vocabularySize else {
            throw .invalidVocabulary(
                path: modelDirectory.appendingPathComponent("vocab.txt").path,
                reason: "\(tokenizer.vocabularySize) tokens, config.json says \(configuration.vocabularySize)")
        }
        guard maxSequenceLength <= configuration.maxPositions, maxSequenceLength <= maxTokensPerPass else {
            throw .unsupported(
                path: modelDirectory.path,
                reason: "maxSequenceLength \(maxSequenceLength) must be at most max_position_embeddings "
                    + "\(configuration.maxPositions) and maxTokensPerPass \(maxTokensPerPass)")
        }
        let file: SafetensorsFile
        do {
            file = try SafetensorsFile(path: modelDirectory.appendingPathComponent("model.safetensors").path)
        } catch {
            throw .weights(error)
        }
        do {
            weights = try Weights(file, configuration, kernelSet: kernelSet)
        } catch {
            throw .weights(error)
        }
        self.identity = EmbeddingModelIdentity(
            name: name ?? modelDirectory.lastPathComponent, weightsSHA256: try Self.sha256Hex(ofFile: file.path),
            dimension: configuration.hiddenSize)
        self.configuration = configuration
        self.tokenizer = tokenizer
        self.maxTokensPerPass = maxTokensPerPass
        self.kernelSet = kernelSet
        self.team = ThreadTeam(threads: threads)
        self.scratch = Scratch(configuration, maxTokensPerPass: maxTokensPerPass, maxSequenceLength: maxSequenceLength)
    }

    /// Lower-case hex SHA-256 of a file, read in chunks (through the mapping it would add the whole file to the
    /// resident set).
    static func sha256Hex(ofFile path: String) throws(ModelLoadError) -> String {
        var hasher = SHA256()
        do {
            let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: path))
            defer { try? handle.close() }
            while let chunk = try handle.read(upToCount: 1 << 22), !chunk.isEmpty {
                hasher.update(data: chunk)
            }
        } catch {
            throw .unreadable(path: path, reason: "\(error)")
        }
        return hasher.finalize().map { byte in String(byte >> 4, radix: 16) + String(byte & 0xF, radix: 16) }.joined()
    }

    /// This implementation is the uncased tokenizer; refuse a configuration that says otherwise.
    private static func checkTokenizerConfiguration(_ url: URL) throws(ModelLoadError) {
        struct File: Decodable {
            let do_lower_case: Bool?
            let strip_accents: Bool?
            let tokenize_chinese_chars: Bool?
        }
        let file: File
        do {
            file = try JSONDecoder().decode(File.self, from: Data(contentsOf: url))
        } catch {
            if !FileManager.default.fileExists(atPath: url.path) { throw .fileNotFound(path: url.path) }
            throw .invalidConfiguration(path: url.path, reason: "\(error)")
        }
        guard file.do_lower_case ?? true, file.strip_accents ?? true, file.tokenize_chinese_chars ?? true else {
            throw .unsupported(path: url.path, reason: "only the uncased BERT tokenizer is implemented")
        }
    }

    /// One unit vector per text, in order.
    public func embed(_ texts: [String]) -> [[Float]] {
        embed(tokenIDs: texts.map(tokenizer.encode))
    }

    /// One unit vector per token sequence (each `[CLS] … [SEP]`, at most `tokenizer.maxLength` long), in order.
    public func embed(tokenIDs sequences: [[Int32]]) -> [[Float]] {
        for ids in sequences {
            precondition(
                (1...tokenizer.maxLength).contains(ids.count), "a sequence has \(ids.count) tokens, not 1...\(tokenizer.maxLength)")
            precondition(ids.allSatisfy { (0..<Int32(configuration.vocabularySize)).contains($0) }, "token id out of range")
        }
        var results: [[Float]] = []
        results.reserveCapacity(sequences.count)
        var start = sequences.startIndex
        while start < sequences.endIndex {
            var end = start
            var rows = 0
            while end < sequences.endIndex && rows + sequences[end].count <= maxTokensPerPass {
                rows += sequences[end].count
                end += 1
            }
            forward(sequences[start..<end], rows: rows, appendingTo: &results)
            start = end
        }
        return results
    }

    private func forward(_ batch: ArraySlice<[Int32]>, rows: Int, appendingTo results: inout [[Float]]) {
        let width = configuration.hiddenSize
        let inner = configuration.intermediateSize
        let epsilon = configuration.layerNormEpsilon
        let hidden = scratch.hidden

        // Embeddings: word + (position + token type 0), then LayerNorm.
        var row = 0
        for ids in batch {
            for (position, id) in ids.enumerated() {
                let out = hidden + (row + position) * width
                Kernels.add(weights.word + Int(id) * width, weights.positionAndType + position * width, into: out, count: width)
                Kernels.addBiasLayerNorm(
                    out, bias: nil, gamma: weights.embeddingNorm.gamma, beta: weights.embeddingNorm.beta, count: width,
                    epsilon: epsilon)
            }
            row += ids.count
        }

        for layer in weights.layers {
            // Query, key and value in one product; the bias goes in first so that the product accumulates onto it.
            Kernels.fillRows(scratch.qkv, with: layer.qkvBias, rows: rows, columns: 3 * width)
            linear(hidden, rows: rows, layer.qkv, into: scratch.qkv)
            row = 0
            for ids in batch {
                attention(firstRow: row, count: ids.count)
                row += ids.count
            }
            // Residual connections: the products accumulate onto `hidden` itself.
            linear(scratch.context, rows: rows, layer.output, into: hidden)
            for r in 0..<rows {
                Kernels.addBiasLayerNorm(
                    hidden + r * width, bias: layer.outputBias, gamma: layer.attentionNorm.gamma,
                    beta: layer.attentionNorm.beta, count: width, epsilon: epsilon)
            }
            Kernels.fillRows(scratch.intermediate, with: layer.intermediateBias, rows: rows, columns: inner)
            linear(hidden, rows: rows, layer.intermediate, into: scratch.intermediate)
            Kernels.gelu(scratch.intermediate, count: rows * inner)
            linear(scratch.intermediate, rows: rows, layer.feedForward, into: hidden)
            for r in 0..<rows {
                Kernels.addBiasLayerNorm(
                    hidden + r * width, bias: layer.feedForwardBias, gamma: layer.feedForwardNorm.gamma,
                    beta: layer.feedForwardNorm.beta, count: width, epsilon: epsilon)
            }
        }

        row = 0
        for ids in batch {
            results.append(Kernels.meanPoolNormalized(hidden + row * width, rows: ids.count, columns: width))
            row += ids.count
        }
    }

    /// Multi-head self-attention of one text (rows `firstRow ..< firstRow + count` of `qkv`) into `context`.
    private func attention(firstRow: Int, count: Int) {
        let width = configuration.hiddenSize
        let headSize = configuration.headSize
        let stride = Int32(3 * width)
        let n = Int32(count)
        let scale = 1 / Float(headSize).squareRoot()
        for head in 0..<configuration.headCount {
            let query = scratch.qkv + firstRow * 3 * width + head * headSize
            let key = query + width
            let value = query + 2 * width
            attention_scores(
                kernelSet.id, n, Int32(headSize), query, key, stride, scale, scratch.scores, scratch.transposedKeys)
            Kernels.softmaxRows(scratch.scores, rows: count, columns: count)
            attention_context(
                kernelSet.id, n, Int32(headSize), scratch.scores, value, stride,
                scratch.context + firstRow * width + head * headSize, Int32(width))
        }
    }

    /// `output (rows × outputs) += input (rows × inputs) · weightᵀ`.
    private func linear(
        _ input: UnsafePointer<Float>, rows: Int, _ layer: PackedLinear, into output: UnsafeMutablePointer<Float>
    ) {
        packed_gemm(
            kernelSet.id, team.pointer, Int32(rows), Int32(layer.outputs), Int32(layer.inputs), input,
            Int32(layer.inputs), layer.weight, output, Int32(layer.outputs))
    }
}

/// The threads that share one encoder's products; the calling thread is one of them.
private final class ThreadTeam {
    let pointer: OpaquePointer
    let size: Int

    init(threads: Int) {
        pointer = thread_team_create(Int32(threads))
        size = threads
    }

    deinit { thread_team_destroy(pointer) }
}

/// A Linear layer's weight (outputs × inputs in PyTorch's layout) packed for the encoder's kernel set.
private struct PackedLinear {
    let weight: UnsafePointer<Float>
    let outputs: Int
    let inputs: Int
}

@available(*, unavailable, message: "BertEncoder has mutable scratch buffers; share a BatchingEmbedder instead")
extension BertEncoder: Sendable {}

/// All weights in one 64-byte-aligned block owned by the encoder, copied out of the file so the mapping can
/// be dropped (and the file replaced) after loading.
private final class Weights {
    struct Norm {
        let gamma: UnsafePointer<Float>
        let beta: UnsafePointer<Float>
    }

    struct Layer {
        /// Query, key and value weights stacked: (3·hidden × hidden), and their biases.
        let qkv: PackedLinear
        let qkvBias: UnsafePointer<Float>
        let output: PackedLinear
        let outputBias: UnsafePointer<Float>
        let attentionNorm: Norm
        let intermediate: PackedLinear
        let intermediateBias: UnsafePointer<Float>
        let feedForward: PackedLinear
        let feedForwardBias: UnsafePointer<Float>
        let feedForwardNorm: Norm
    }

    let word: UnsafePointer<Float>
    /// Position embeddings with the (single) token type 0 embedding already added.
    let positionAndType: UnsafePointer<Float>
    let embeddingNorm: Norm
    let layers: [Layer]
    private let storage: UnsafeMutableRawPointer

    init(_ file: SafetensorsFile, _ c: BertConfiguration, kernelSet: KernelSet) throws(SafetensorsError) {
        let h = c.hiddenSize
        let i = c.intermediateSize
        // Floats per tensor, rounded up to 16 so that every tensor starts on a 64-byte boundary.
        func padded(_ count: Int) -> Int { (count + 15) / 16 * 16 }
        func packed(_ outputs: Int, _ inputs: Int) -> Int {
            padded(packed_weight_count(kernelSet.id, Int32(outputs), Int32(inputs)))
        }
        let perLayer = packed(3 * h, h) + padded(3 * h) + packed(h, h) + padded(h) + 2 * padded(h)
            + packed(i, h) + padded(i) + packed(h, i) + padded(h) + 2 * padded(h)
        let total = padded(c.vocabularySize * h) + padded(c.maxPositions * h) + padded(c.typeVocabularySize * h) + 2 * padded(h)
            + c.layerCount * perLayer
        storage = .allocate(byteCount: total * MemoryLayout<Float>.stride, alignment: 64)
        var next = storage.bindMemory(to: Float.self, capacity: total)
        func take(_ count: Int) -> UnsafeMutablePointer<Float> {
            defer { next += padded(count) }
            return next
        }
        // Each weight goes through this buffer on its way from the file to its packed form.
        let unpacked = UnsafeMutablePointer<Float>.allocate(capacity: max(3 * h * h, i * h))
        defer { unpacked.deallocate() }
        func pack(outputs: Int, inputs: Int) -> PackedLinear {
            let destination = take(packed_weight_count(kernelSet.id, Int32(outputs), Int32(inputs)))
            pack_weight(kernelSet.id, unpacked, Int32(outputs), Int32(inputs), destination)
            return PackedLinear(weight: destination, outputs: outputs, inputs: inputs)
        }
        func linear(_ name: String, outputs: Int, inputs: Int) throws(SafetensorsError) -> PackedLinear {
            try file.copyFloats(name, shape: [outputs, inputs], into: unpacked)
            return pack(outputs: outputs, inputs: inputs)
        }
        func load(_ name: String, _ shape: [Int]) throws(SafetensorsError) -> UnsafePointer<Float> {
            let destination = take(shape.reduce(1, *))
            try file.copyFloats(name, shape: shape, into: destination)
            return UnsafePointer(destination)
        }
        func norm(_ prefix: String) throws(SafetensorsError) -> Norm {
            Norm(gamma: try load(prefix + ".weight", [h]), beta: try load(prefix + ".bias", [h]))
        }

        do {
            word = try load("embeddings.word_embeddings.weight", [c.vocabularySize, h])
            let positions = take(c.maxPositions * h)
            try file.copyFloats("embeddings.position_embeddings.weight", shape: [c.maxPositions, h], into: positions)
            let type = take(c.typeVocabularySize * h)
            try file.copyFloats("embeddings.token_type_embeddings.weight", shape: [c.typeVocabularySize, h], into: type)
            for p in 0..<c.maxPositions {
                Kernels.add(positions + p * h, type, into: positions + p * h, count: h)
            }
            positionAndType = UnsafePointer(positions)
            embeddingNorm = try norm("embeddings.LayerNorm")

            var layers: [Layer] = []
            for l in 0..<c.layerCount {
                let prefix = "encoder.layer.\(l)."
                let qkvBias = take(3 * h)
                for (part, name) in ["query", "key", "value"].enumerated() {
                    try file.copyFloats(prefix + "attention.self.\(name).weight", shape: [h, h], into: unpacked + part * h * h)
                    try file.copyFloats(prefix + "attention.self.\(name).bias", shape: [h], into: qkvBias + part * h)
                }
                layers.append(
                    Layer(
                        qkv: pack(outputs: 3 * h, inputs: h), qkvBias: qkvBias,
                        output: try linear(prefix + "attention.output.dense.weight", outputs: h, inputs: h),
                        outputBias: try load(prefix + "attention.output.dense.bias", [h]),
                        attentionNorm: try norm(prefix + "attention.output.LayerNorm"),
                        intermediate: try linear(prefix + "intermediate.dense.weight", outputs: i, inputs: h),
                        intermediateBias: try load(prefix + "intermediate.dense.bias", [i]),
                        feedForward: try linear(prefix + "output.dense.weight", outputs: h, inputs: i),
                        feedForwardBias: try load(prefix + "output.dense.bias", [h]),
                        feedForwardNorm: try norm(prefix + "output.LayerNorm")))
            }
            self.layers = layers
        } catch {
            storage.deallocate()
            throw error
        }
    }

    deinit { storage.deallocate() }
}

/// Activations of one forward pass, allocated once. Pages are touched only as far as batches reach.
private final class Scratch {
    let hidden: UnsafeMutablePointer<Float>
    let qkv: UnsafeMutablePointer<Float>
    let context: UnsafeMutablePointer<Float>
    let intermediate: UnsafeMutablePointer<Float>
    let scores: UnsafeMutablePointer<Float>
    /// One head's keys of one text, transposed (head size × tokens).
    let transposedKeys: UnsafeMutablePointer<Float>
    private let storage: UnsafeMutableRawPointer

    /// Room for `rows` tokens.
    init(_ c: BertConfiguration, maxTokensPerPass rows: Int, maxSequenceLength: Int) {
        let sizes = [rows * c.hiddenSize, rows * 3 * c.hiddenSize, rows * c.hiddenSize, rows * c.intermediateSize,
                     maxSequenceLength * maxSequenceLength, c.headSize * maxSequenceLength].map { ($0 + 15) / 16 * 16 }
        storage = .allocate(byteCount: sizes.reduce(0, +) * MemoryLayout<Float>.stride, alignment: 64)
        var next = storage.bindMemory(to: Float.self, capacity: sizes.reduce(0, +))
        var buffers: [UnsafeMutablePointer<Float>] = []
        for size in sizes {
            buffers.append(next)
            next += size
        }
        (hidden, qkv, context, intermediate, scores, transposedKeys) =
            (buffers[0], buffers[1], buffers[2], buffers[3], buffers[4], buffers[5])
    }

    deinit { storage.deallocate() }
}
