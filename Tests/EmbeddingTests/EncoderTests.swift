import Foundation
import Testing

@testable import Embedding

@Suite struct EncoderTests {
    static let sequences: [[Int32]] = [
        [2, 3],
        [2, 5, 6, 7, 8, 3],
        [2, 12, 7, 13, 9, 10, 11, 3],
        [2, 1, 3],
        [2, 5, 6, 7, 8, 11, 12, 7, 13, 6, 11, 5, 9, 10, 8, 3],  // the full 16-token window
    ]

    /// Every kernel set this CPU runs, with one thread and with more threads than the products have panels.
    @Test(arguments: KernelSet.allCases.filter { $0.runs(on: .host) }, [1, 3])
    func matchesAPlainImplementationOfTheSameNetwork(kernelSet: KernelSet, threads: Int) throws {
        let model = try TinyModel()
        let embeddings = try model.encoder(threads: threads, kernelSet: kernelSet).embed(tokenIDs: Self.sequences)
        for (ids, embedding) in zip(Self.sequences, embeddings) {
            let expected = model.reference(ids)
            let error = zip(embedding, expected).map { abs(Double($0) - $1) }.max()!
            #expect(error < 2e-6, "max error \(error) for \(ids)")
        }
    }

    /// Every pass here has a row count that is not a multiple of any kernel's tile height.
    @Test func aBatchEqualsItsTextsOneByOneWhateverThePasses() throws {
        let model = try TinyModel()
        let alone = try Self.sequences.map { try model.encoder().embed(tokenIDs: [$0])[0] }
        // 64 rows take the whole batch in one pass; 16 rows force a pass per one or two texts.
        for maxTokensPerPass in [64, 16] {
            let batch = try model.encoder(maxTokensPerPass: maxTokensPerPass).embed(tokenIDs: Self.sequences)
            #expect(batch.count == alone.count)
            for (a, b) in zip(batch, alone) {
                #expect(zip(a, b).allSatisfy { abs($0 - $1) <= 1e-6 })
            }
        }
    }

    @Test func embeddingsAreUnitVectorsOfTheModelsDimension() throws {
        let embeddings = try Fixtures.withEncoder { $0.embed(["", "How do I locate my card?"]) }
        for embedding in embeddings {
            #expect(embedding.count == 384)
            #expect(abs(embedding.reduce(0) { $0 + $1 * $1 } - 1) < 1e-5)
        }
        #expect(try Fixtures.withEncoder { $0.embed([]) }.isEmpty)
    }

    @Test func identityNamesTheModelAndHashesTheWeightsFile() throws {
        let identity = try Fixtures.withEncoder { $0.identity }
        #expect(identity.name == "all-MiniLM-L6-v2")
        #expect(identity.dimension == 384)
        let file = Fixtures.modelDirectory.appendingPathComponent("model.safetensors").path
        #expect(identity.weightsSHA256 == (try BertEncoder.sha256Hex(ofFile: file)))
    }

    @Test func identitiesDifferExactlyWhenTheWeightsDo() throws {
        let first = try TinyModel(seed: 1).encoder().identity
        #expect(try TinyModel(seed: 1).encoder().identity == first)
        let other = try TinyModel(seed: 2).encoder().identity
        #expect(other.weightsSHA256 != first.weightsSHA256)
        #expect(other != first)
    }

    @Test func sha256HexIsTheStandardDigest() throws {
        let directory = try TemporaryDirectory()
        let file = directory.url.appendingPathComponent("abc")
        try Data("abc".utf8).write(to: file)
        #expect(try BertEncoder.sha256Hex(ofFile: file.path) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    // MARK: - A missing, truncated or wrong file is a typed error

    @Test func missingDirectory() throws {
        let directory = try TemporaryDirectory()
        let missing = directory.url.appendingPathComponent("absent")
        #expect(throws: ModelLoadError.fileNotFound(path: missing.appendingPathComponent("config.json").path)) {
            try BertEncoder(modelDirectory: missing)
        }
    }

    @Test func missingWeightsFile() throws {
        let model = try TinyModel()
        let weights = model.url.appendingPathComponent("model.safetensors")
        try FileManager.default.removeItem(at: weights)
        #expect(throws: ModelLoadError.weights(.fileNotFound(path: weights.path))) { try model.encoder() }
    }

    @Test func truncatedWeightsFile() throws {
        let model = try TinyModel()
        let weights = model.url.appendingPathComponent("model.safetensors")
        let bytes = try Data(contentsOf: weights)
        try bytes.prefix(bytes.count - 4).write(to: weights)
        #expect {
            try model.encoder()
        } throws: { error in
            guard case .weights(.truncated(let path, _)) = error as? ModelLoadError else { return false }
            return path == weights.path
        }
    }

    @Test func tensorOfTheWrongShape() throws {
        var model = try TinyModel()
        model.replace("encoder.layer.1.intermediate.dense.weight", shape: [16, 32])
        try model.write()
        #expect(
            throws: ModelLoadError.weights(
                .wrongShape(
                    path: model.url.appendingPathComponent("model.safetensors").path,
                    name: "encoder.layer.1.intermediate.dense.weight", expected: [32, 16], actual: [16, 32]))
        ) { try model.encoder() }
    }

    @Test func missingTensor() throws {
        var model = try TinyModel()
        model.remove("encoder.layer.0.attention.self.value.bias")
        try model.write()
        #expect(
            throws: ModelLoadError.weights(
                .missingTensor(
                    path: model.url.appendingPathComponent("model.safetensors").path,
                    name: "encoder.layer.0.attention.self.value.bias"))
        ) { try model.encoder() }
    }

    @Test func vocabularyThatDisagreesWithTheConfiguration() throws {
        var model = try TinyModel()
        model.configuration["vocab_size"] = 30522
        try model.write()
        #expect(
            throws: ModelLoadError.invalidVocabulary(
                path: model.url.appendingPathComponent("vocab.txt").path, reason: "14 tokens, config.json says 30522")
        ) { try model.encoder() }
    }

    @Test func configurationsItCannotRun() throws {
        var model = try TinyModel()
        let config = model.url.appendingPathComponent("config.json").path
        model.configuration["hidden_act"] = "relu"
        try model.write()
        #expect(throws: ModelLoadError.unsupported(path: config, reason: "hidden_act relu, only gelu is implemented")) {
            try model.encoder()
        }

        model.configuration["hidden_act"] = "gelu"
        model.tokenizerConfiguration["do_lower_case"] = false
        try model.write()
        #expect(
            throws: ModelLoadError.unsupported(
                path: model.url.appendingPathComponent("tokenizer_config.json").path,
                reason: "only the uncased BERT tokenizer is implemented")
        ) { try model.encoder() }
    }

    @Test func malformedConfiguration() throws {
        let model = try TinyModel()
        try Data("{\"hidden_size\": ".utf8).write(to: model.url.appendingPathComponent("config.json"))
        #expect {
            try model.encoder()
        } throws: { error in
            guard case .invalidConfiguration = error as? ModelLoadError else { return false }
            return true
        }
    }
}
