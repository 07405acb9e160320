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
}
