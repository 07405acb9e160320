import Foundation

/// The parts of a HuggingFace BERT `config.json` the encoder uses, validated against what it can run.
public struct BertConfiguration: Sendable, Equatable {
    public var hiddenSize: Int
    public var layerCount: Int
    public var headCount: Int
    public var intermediateSize: Int
    public var maxPositions: Int
    public var vocabularySize: Int
    public var typeVocabularySize: Int
    public var layerNormEpsilon: Float

    public var headSize: Int { hiddenSize / headCount }

    private struct File: Decodable {
        let hidden_size: Int
        let num_hidden_layers: Int
        let num_attention_heads: Int
        let intermediate_size: Int
        let max_position_embeddings: Int
        let vocab_size: Int
        let type_vocab_size: Int
        let layer_norm_eps: Float
        let hidden_act: String
        let position_embedding_type: String?
    }

    public init(contentsOf url: URL) throws(ModelLoadError) {
        let path = url.path
        guard FileManager.default.fileExists(atPath: path) else { throw .fileNotFound(path: path) }
        let file: File
        do {
            file = try JSONDecoder().decode(File.self, from: Data(contentsOf: url))
        } catch {
            throw .invalidConfiguration(path: path, reason: "\(error)")
        }
        // Exact-erf GELU and absolute positions are what this encoder computes; anything else would be
        // silently wrong.
        guard file.hidden_act == "gelu" else {
            throw .unsupported(path: path, reason: "hidden_act \(file.hidden_act), only gelu is implemented")
        }
        if let positions = file.position_embedding_type, positions != "absolute" {
            throw .unsupported(path: path, reason: "position_embedding_type \(positions), only absolute is implemented")
        }
        hiddenSize = file.hidden_size
        layerCount = file.num_hidden_layers
        headCount = file.num_attention_heads
        intermediateSize = file.intermediate_size
        maxPositions = file.max_position_embeddings
        vocabularySize = file.vocab_size
        typeVocabularySize = file.type_vocab_size
        layerNormEpsilon = file.layer_norm_eps
        let sizes = [hiddenSize, layerCount, headCount, intermediateSize, maxPositions, vocabularySize, typeVocabularySize]
        guard sizes.allSatisfy({ $0 > 0 }) else {
            throw .invalidConfiguration(path: path, reason: "sizes must be positive")
        }
        // The vector kernels work in steps of 8 floats.
        guard hiddenSize % headCount == 0, hiddenSize % Kernels.width == 0, intermediateSize % Kernels.width == 0 else {
            throw .unsupported(
                path: path,
                reason: "hidden_size \(hiddenSize) must divide into \(headCount) heads, and hidden and intermediate "
                    + "sizes must be multiples of \(Kernels.width)")
        }
    }
}
