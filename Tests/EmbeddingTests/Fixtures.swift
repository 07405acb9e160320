import Foundation
import Testing

@testable import Embedding

/// Paths of the model and the shared fixtures, found from this file: <root>/Tests/EmbeddingTests/Fixtures.swift.
enum Fixtures {
    static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static let modelDirectory: URL = {
        if let override = ProcessInfo.processInfo.environment["DISTILL_MODEL_DIR"] {
            return URL(fileURLWithPath: override)
        }
        return packageRoot.appendingPathComponent("models/all-MiniLM-L6-v2")
    }()

    static let goldenFile = packageRoot.appendingPathComponent("../shared/fixtures/minilm_golden.jsonl").standardizedFileURL

    struct Golden: Decodable {
        let text: String
        let input_ids: [Int32]
        let embedding: [Float]
    }

    static func golden() throws -> [Golden] {
        let lines = try String(contentsOf: goldenFile, encoding: .utf8).split(separator: "\n")
        return try lines.map { try JSONDecoder().decode(Golden.self, from: Data($0.utf8)) }
    }

    /// Loading costs ~0.5 s (hashing and copying 87 MB), so the suites share one encoder. It is not
    /// `Sendable`: tests that use it run serialized and take the lock.
    nonisolated(unsafe) private static var sharedEncoder: BertEncoder?
    private static let lock = NSLock()

    static func withEncoder<R>(_ body: (BertEncoder) throws -> R) throws -> R {
        lock.lock()
        defer { lock.unlock() }
        if sharedEncoder == nil { sharedEncoder = try BertEncoder(modelDirectory: modelDirectory) }
        return try body(sharedEncoder!)
    }

    static func tokenizer() throws -> WordPieceTokenizer {
        try WordPieceTokenizer(vocabularyFile: modelDirectory.appendingPathComponent("vocab.txt"))
    }

    static func cosine(_ a: [Float], _ b: [Float]) -> Double {
        var dot = 0.0, aa = 0.0, bb = 0.0
        for (x, y) in zip(a, b) {
            dot += Double(x) * Double(y)
            aa += Double(x) * Double(x)
            bb += Double(y) * Double(y)
        }
        return dot / (aa.squareRoot() * bb.squareRoot())
    }
}
