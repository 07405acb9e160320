import Foundation

@testable import Embedding

/// A small BERT with seeded random weights, written as a model directory, plus a plain double-precision
/// implementation of the same network to check the encoder against, shape by shape.
struct TinyModel {
    static let hidden = 16
    static let heads = 2
    static let intermediate = 32
    static let layers = 2
    static let positions = 24
    static let tokens = [
        "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "my", "card", "is", "lost", "pin", "##s", "?", "where", "the",
    ]

    let directory: TemporaryDirectory
    var url: URL { directory.url }
    private(set) var tensors: [String: (shape: [Int], values: [Float])] = [:]
    private var order: [String] = []

    var configuration: [String: Any] = [
        "hidden_size": hidden, "num_hidden_layers": layers, "num_attention_heads": heads,
        "intermediate_size": intermediate, "max_position_embeddings": positions, "vocab_size": tokens.count,
        "type_vocab_size": 2, "layer_norm_eps": 1e-12, "hidden_act": "gelu", "position_embedding_type": "absolute",
    ]
    var tokenizerConfiguration: [String: Any] = ["do_lower_case": true, "strip_accents": NSNull()]

    init(seed: UInt64 = 1) throws {
        directory = try TemporaryDirectory()
        var state = seed
        func random() -> Float {
            // xorshift64*: deterministic across platforms.
            state ^= state >> 12
            state ^= state << 25
            state ^= state >> 27
            return Float((state &* 2_685_821_657_736_338_717) >> 40) / Float(1 << 24) - 0.5
        }
        func add(_ name: String, _ shape: [Int], scale: Float, offset: Float = 0) {
            tensors[name] = (shape, (0..<shape.reduce(1, *)).map { _ in offset + scale * random() })
            order.append(name)
        }
        let h = Self.hidden
        let i = Self.intermediate
        add("embeddings.word_embeddings.weight", [Self.tokens.count, h], scale: 2)
        add("embeddings.position_embeddings.weight", [Self.positions, h], scale: 1)
        add("embeddings.token_type_embeddings.weight", [2, h], scale: 1)
        add("embeddings.LayerNorm.weight", [h], scale: 0.2, offset: 1)
        add("embeddings.LayerNorm.bias", [h], scale: 0.2)
        for l in 0..<Self.layers {
            let p = "encoder.layer.\(l)."
            for part in ["query", "key", "value"] {
                add(p + "attention.self.\(part).weight", [h, h], scale: 1)
                add(p + "attention.self.\(part).bias", [h], scale: 0.2)
            }
            add(p + "attention.output.dense.weight", [h, h], scale: 0.5)
            add(p + "attention.output.dense.bias", [h], scale: 0.2)
            add(p + "attention.output.LayerNorm.weight", [h], scale: 0.2, offset: 1)
            add(p + "attention.output.LayerNorm.bias", [h], scale: 0.2)
            add(p + "intermediate.dense.weight", [i, h], scale: 1)
            add(p + "intermediate.dense.bias", [i], scale: 0.2)
            add(p + "output.dense.weight", [h, i], scale: 0.5)
            add(p + "output.dense.bias", [h], scale: 0.2)
            add(p + "output.LayerNorm.weight", [h], scale: 0.2, offset: 1)
            add(p + "output.LayerNorm.bias", [h], scale: 0.2)
        }
        try write()
    }

    /// Writes the directory; call again after changing the configurations or tensors.
    func write() throws {
        try JSONSerialization.data(withJSONObject: configuration, options: .sortedKeys).write(to: url.appendingPathComponent("config.json"))
        try JSONSerialization.data(withJSONObject: tokenizerConfiguration, options: .sortedKeys)
            .write(to: url.appendingPathComponent("tokenizer_config.json"))
        try (Self.tokens.joined(separator: "\n") + "\n").write(
            to: url.appendingPathComponent("vocab.txt"), atomically: true, encoding: .utf8)
        let file = try SafetensorsWriter.data(order.map { SafetensorsWriter.Tensor($0, shape: tensors[$0]!.shape, floats: tensors[$0]!.values) })
        try file.write(to: url.appendingPathComponent("model.safetensors"))
    }

    mutating func replace(_ name: String, shape: [Int]) {
        tensors[name] = (shape, Array(repeating: 0.5, count: shape.reduce(1, *)))
    }

    mutating func remove(_ name: String) {
        tensors[name] = nil
        order.removeAll { $0 == name }
    }

    func encoder(
        maxSequenceLength: Int = 16, maxTokensPerPass: Int = 64, threads: Int = 1,
        kernelSet: KernelSet = KernelChoice.host.kernelSet
    ) throws -> sending BertEncoder {
        try BertEncoder(
            modelDirectory: url, name: "tiny", maxSequenceLength: maxSequenceLength, maxTokensPerPass: maxTokensPerPass,
            threads: threads, kernelSet: kernelSet)
    }

    /// The sentence embedding of one token sequence, computed the obvious way in double precision.
    func reference(_ ids: [Int32]) -> [Double] {
        let h = Self.hidden
        let headSize = h / Self.heads
        func w(_ name: String) -> [Double] { tensors[name]!.values.map(Double.init) }
        func linear(_ x: [Double], _ prefix: String) -> [Double] {
            let weight = w(prefix + ".weight")
            let bias = w(prefix + ".bias")
            return bias.indices.map { o in bias[o] + x.indices.reduce(0) { $0 + weight[o * x.count + $1] * x[$1] } }
        }
        func layerNorm(_ x: [Double], _ prefix: String) -> [Double] {
            let mean = x.reduce(0, +) / Double(x.count)
            let variance = x.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(x.count)
            let gamma = w(prefix + ".weight")
            let beta = w(prefix + ".bias")
            return x.indices.map { (x[$0] - mean) / (variance + 1e-12).squareRoot() * gamma[$0] + beta[$0] }
        }
        let word = w("embeddings.word_embeddings.weight")
        let position = w("embeddings.position_embeddings.weight")
        let type = w("embeddings.token_type_embeddings.weight")
        var states = ids.enumerated().map { t, id in
            layerNorm((0..<h).map { word[Int(id) * h + $0] + position[t * h + $0] + type[$0] }, "embeddings.LayerNorm")
        }
        for l in 0..<Self.layers {
            let p = "encoder.layer.\(l)."
            let q = states.map { linear($0, p + "attention.self.query") }
            let k = states.map { linear($0, p + "attention.self.key") }
            let v = states.map { linear($0, p + "attention.self.value") }
            var context = states.map { _ in [Double](repeating: 0, count: h) }
            for head in 0..<Self.heads {
                let dims = (head * headSize)..<((head + 1) * headSize)
                for i in states.indices {
                    let scores = states.indices.map { j in dims.reduce(0) { $0 + q[i][$1] * k[j][$1] } / Double(headSize).squareRoot() }
                    let top = scores.max()!
                    let weights = scores.map { Foundation.exp($0 - top) }
                    let total = weights.reduce(0, +)
                    for j in states.indices {
                        for d in dims { context[i][d] += weights[j] / total * v[j][d] }
                    }
                }
            }
            states = states.indices.map { t in
                let attended = layerNorm(
                    zip(linear(context[t], p + "attention.output.dense"), states[t]).map(+), p + "attention.output.LayerNorm")
                let inner = linear(attended, p + "intermediate.dense").map { 0.5 * $0 * (1 + Foundation.erf($0 / 2.0.squareRoot())) }
                return layerNorm(zip(linear(inner, p + "output.dense"), attended).map(+), p + "output.LayerNorm")
            }
        }
        let mean = (0..<h).map { d in states.reduce(0) { $0 + $1[d] } / Double(states.count) }
        let norm = mean.reduce(0) { $0 + $1 * $1 }.squareRoot()
        return mean.map { $0 / norm }
    }
}
