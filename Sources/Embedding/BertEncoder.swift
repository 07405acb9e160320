import CBLAS
import Crypto
import Foundation

/// A BERT sentence encoder with mean pooling and L2 normalization: all-MiniLM-L6-v2 as sentence-transformers
/// runs it, in fp32 on BLAS.
///
/// Batches are packed, not padded: the tokens of all texts are rows of one matrix, so every dense layer is one
/// `sgemm` over real tokens only, and attention runs per text over its own rows, which is what the attention
/// mask of a padded batch achieves.
///
/// Holds mutable scratch buffers, so one instance serves one caller at a time: it is deliberately not
/// `Sendable`. `BatchingEmbedder` owns one on a dedicated thread and is the shareable front.
public final class BertEncoder {
    public let identity: EmbeddingModelIdentity
    public let configuration: BertConfiguration
    public let tokenizer: WordPieceTokenizer
    /// Most token rows in one forward pass; bounds the scratch memory. Larger batches run in several passes.
    public let maxTokensPerPass: Int

    private let weights: Weights
    private let scratch: Scratch

    /// Loads `config.json`, `vocab.txt` and `model.safetensors` from a sentence-transformers model directory.
    /// - Parameters:
    ///   - name: the identity's name; defaults to the directory's name.
    ///   - maxSequenceLength: tokens per text including `[CLS]` and `[SEP]` (sentence-transformers' window is 256).
    public init(
        modelDirectory: URL, name: String? = nil, maxSequenceLength: Int = 256, maxTokensPerPass: Int = 1024
    ) throws(ModelLoadError) {
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
            weights = try Weights(file, configuration)
        } catch {
            throw .weights(error)
        }
        self.identity = EmbeddingModelIdentity(
            name: name ?? modelDirectory.lastPathComponent, weightsSHA256: try Self.sha256Hex(ofFile: file.path),
            dimension: configuration.hiddenSize)
        self.configuration = configuration
        self.tokenizer = tokenizer
        self.maxTokensPerPass = maxTokensPerPass
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

    /// OpenBLAS's sgemm slows down sharply when the row count is not a multiple of its kernel width times its
    /// threads. Measured on the project's machine (Zen 5, OpenBLAS 0.3.21): on 2 threads the 24 dense products
    /// of a 13-token text take 1.9× (Haswell kernels) and 1.35× (SkylakeX kernels) as long as those of 16
    /// tokens, and multiples of 16 are the minima at every size; on 1 thread the minima are multiples of 4.
    /// So the dense products run on row counts rounded up to this quantum.
    static func rowQuantum(threads: Int) -> Int { threads <= 1 ? 4 : min(8 * threads, maxRowQuantum) }
    static let maxRowQuantum = 64

    private func forward(_ batch: ArraySlice<[Int32]>, rows realRows: Int, appendingTo results: inout [[Float]]) {
        let width = configuration.hiddenSize
        let inner = configuration.intermediateSize
        let epsilon = configuration.layerNormEpsilon
        let hidden = scratch.hidden
        // Padding rows start as zero vectors and go through every row-wise step like tokens (so they stay finite);
        // attention and pooling never read them, and no other row depends on them.
        let quantum = Self.rowQuantum(threads: BLAS.threadCount)
        let rows = (realRows + quantum - 1) / quantum * quantum
        (hidden + realRows * width).initialize(repeating: 0, count: (rows - realRows) * width)
        (scratch.context + realRows * width).initialize(repeating: 0, count: (rows - realRows) * width)

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
            // Query, key and value in one product; the bias goes in first so sgemm accumulates onto it.
            Kernels.fillRows(scratch.qkv, with: layer.qkvBias, rows: rows, columns: 3 * width)
            linear(hidden, rows: rows, inputs: width, layer.qkvWeight, outputs: 3 * width, into: scratch.qkv, accumulate: true)
            row = 0
            for ids in batch {
                attention(firstRow: row, count: ids.count)
                row += ids.count
            }
            // Residual connections: the products accumulate onto `hidden` itself.
            linear(scratch.context, rows: rows, inputs: width, layer.outputWeight, outputs: width, into: hidden, accumulate: true)
            for r in 0..<rows {
                Kernels.addBiasLayerNorm(
                    hidden + r * width, bias: layer.outputBias, gamma: layer.attentionNorm.gamma,
                    beta: layer.attentionNorm.beta, count: width, epsilon: epsilon)
            }
            Kernels.fillRows(scratch.intermediate, with: layer.intermediateBias, rows: rows, columns: inner)
            linear(hidden, rows: rows, inputs: width, layer.intermediateWeight, outputs: inner, into: scratch.intermediate, accumulate: true)
            Kernels.gelu(scratch.intermediate, count: rows * inner)
            linear(scratch.intermediate, rows: rows, inputs: inner, layer.feedForwardWeight, outputs: width, into: hidden, accumulate: true)
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
            cblas_sgemm(
                CblasRowMajor, CblasNoTrans, CblasTrans, n, n, Int32(headSize), scale, query, stride, key, stride, 0,
                scratch.scores, n)
            Kernels.softmaxRows(scratch.scores, rows: count, columns: count)
            cblas_sgemm(
                CblasRowMajor, CblasNoTrans, CblasNoTrans, n, Int32(headSize), n, 1, scratch.scores, n, value, stride, 0,
                scratch.context + firstRow * width + head * headSize, Int32(width))
        }
    }

    /// `output (rows × outputs) [+]= input (rows × inputs) · weightᵀ`, the weight in PyTorch's (outputs × inputs) layout.
    private func linear(
        _ input: UnsafePointer<Float>, rows: Int, inputs: Int, _ weight: UnsafePointer<Float>, outputs: Int,
        into output: UnsafeMutablePointer<Float>, accumulate: Bool
    ) {
        cblas_sgemm(
            CblasRowMajor, CblasNoTrans, CblasTrans, Int32(rows), Int32(outputs), Int32(inputs), 1, input, Int32(inputs),
            weight, Int32(inputs), accumulate ? 1 : 0, output, Int32(outputs))
    }
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
        let qkvWeight: UnsafePointer<Float>
        let qkvBias: UnsafePointer<Float>
        let outputWeight: UnsafePointer<Float>
        let outputBias: UnsafePointer<Float>
        let attentionNorm: Norm
        let intermediateWeight: UnsafePointer<Float>
        let intermediateBias: UnsafePointer<Float>
        let feedForwardWeight: UnsafePointer<Float>
        let feedForwardBias: UnsafePointer<Float>
        let feedForwardNorm: Norm
    }

    let word: UnsafePointer<Float>
    /// Position embeddings with the (single) token type 0 embedding already added.
    let positionAndType: UnsafePointer<Float>
    let embeddingNorm: Norm
    let layers: [Layer]
    private let storage: UnsafeMutableRawPointer

    init(_ file: SafetensorsFile, _ c: BertConfiguration) throws(SafetensorsError) {
        let h = c.hiddenSize
        let i = c.intermediateSize
        // Floats per tensor, rounded up to 16 so that every tensor starts on a 64-byte boundary.
        func padded(_ count: Int) -> Int { (count + 15) / 16 * 16 }
        let perLayer = padded(3 * h * h) + padded(3 * h) + padded(h * h) + padded(h) + 2 * padded(h)
            + padded(i * h) + padded(i) + padded(h * i) + padded(h) + 2 * padded(h)
        let total = padded(c.vocabularySize * h) + padded(c.maxPositions * h) + padded(c.typeVocabularySize * h) + 2 * padded(h)
            + c.layerCount * perLayer
        storage = .allocate(byteCount: total * MemoryLayout<Float>.stride, alignment: 64)
        var next = storage.bindMemory(to: Float.self, capacity: total)
        func take(_ count: Int) -> UnsafeMutablePointer<Float> {
            defer { next += padded(count) }
            return next
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
                let qkvWeight = take(3 * h * h)
                let qkvBias = take(3 * h)
                for (part, name) in ["query", "key", "value"].enumerated() {
                    try file.copyFloats(prefix + "attention.self.\(name).weight", shape: [h, h], into: qkvWeight + part * h * h)
                    try file.copyFloats(prefix + "attention.self.\(name).bias", shape: [h], into: qkvBias + part * h)
                }
                layers.append(
                    Layer(
                        qkvWeight: qkvWeight, qkvBias: qkvBias,
                        outputWeight: try load(prefix + "attention.output.dense.weight", [h, h]),
                        outputBias: try load(prefix + "attention.output.dense.bias", [h]),
                        attentionNorm: try norm(prefix + "attention.output.LayerNorm"),
                        intermediateWeight: try load(prefix + "intermediate.dense.weight", [i, h]),
                        intermediateBias: try load(prefix + "intermediate.dense.bias", [i]),
                        feedForwardWeight: try load(prefix + "output.dense.weight", [h, i]),
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
    private let storage: UnsafeMutableRawPointer

    /// Room for `rows` tokens plus padding up to the row quantum.
    init(_ c: BertConfiguration, maxTokensPerPass rows: Int, maxSequenceLength: Int) {
        let rows = rows + BertEncoder.maxRowQuantum
        let sizes = [rows * c.hiddenSize, rows * 3 * c.hiddenSize, rows * c.hiddenSize, rows * c.intermediateSize,
                     maxSequenceLength * maxSequenceLength].map { ($0 + 15) / 16 * 16 }
        storage = .allocate(byteCount: sizes.reduce(0, +) * MemoryLayout<Float>.stride, alignment: 64)
        var next = storage.bindMemory(to: Float.self, capacity: sizes.reduce(0, +))
        var buffers: [UnsafeMutablePointer<Float>] = []
        for size in sizes {
            buffers.append(next)
            next += size
        }
        (hidden, qkv, context, intermediate, scores) = (buffers[0], buffers[1], buffers[2], buffers[3], buffers[4])
    }

    deinit { storage.deallocate() }
}
