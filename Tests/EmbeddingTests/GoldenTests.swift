import Foundation
import Testing

@testable import Embedding

/// Against sentence-transformers' own tokenizer and PyTorch embeddings (../shared/fixtures/minilm_golden.jsonl).
@Suite struct GoldenTests {
    @Test func tokenIDsMatchTheReferenceTokenizer() throws {
        let tokenizer = try Fixtures.tokenizer()
        let golden = try Fixtures.golden()
        #expect(golden.count == 40)
        for row in golden {
            #expect(tokenizer.encode(row.text) == row.input_ids, "\(row.text.debugDescription)")
        }
    }

    @Test func embeddingsMatchTheReferenceModel() throws {
        let golden = try Fixtures.golden()
        let embeddings = try Fixtures.withEncoder { $0.embed(golden.map(\.text)) }
        for (row, embedding) in zip(golden, embeddings) {
            #expect(embedding.count == 384)
            let cosine = Fixtures.cosine(embedding, row.embedding)
            #expect(cosine >= 0.9999, "cosine \(cosine) for \(row.text.debugDescription)")
        }
    }

    /// The kernel sets other than the process's (the shared encoder runs that one), the portable set that a CPU
    /// without AVX2 gets included, give the reference vectors and the process's own.
    @Test(arguments: KernelSet.allCases.filter { $0.runs(on: .host) && $0 != KernelChoice.host.kernelSet })
    func everyKernelSetMatchesTheReferenceModel(kernelSet: KernelSet) throws {
        let golden = try Fixtures.golden()
        let dispatched = try Fixtures.withEncoder { $0.embed(golden.map(\.text)) }
        let encoder = try BertEncoder(modelDirectory: Fixtures.modelDirectory, threads: 2, kernelSet: kernelSet)
        for ((row, embedding), own) in zip(zip(golden, encoder.embed(golden.map(\.text))), dispatched) {
            let cosine = Fixtures.cosine(embedding, row.embedding)
            #expect(cosine >= 0.9999, "\(kernelSet): cosine \(cosine) for \(row.text.debugDescription)")
            let agreement = Fixtures.cosine(embedding, own)
            #expect(agreement >= 0.99999, "\(kernelSet) against \(KernelChoice.host.kernelSet): cosine \(agreement)")
        }
    }
}
