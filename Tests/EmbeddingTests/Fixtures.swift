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

/// A fresh directory, removed when the value goes away.
final class TemporaryDirectory {
    let url: URL

    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("distill-embedding-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(at: url) }
}

/// Writes safetensors files: 8-byte little-endian header length, JSON header, tensor bytes in order.
enum SafetensorsWriter {
    struct Tensor {
        var name: String
        var dtype = "F32"
        var shape: [Int]
        var bytes: [UInt8]

        init(_ name: String, shape: [Int], floats: [Float]) {
            self.name = name
            self.shape = shape
            self.bytes = floats.withUnsafeBytes { Array($0) }
        }

        init(_ name: String, dtype: String, shape: [Int], bytes: [UInt8]) {
            (self.name, self.dtype, self.shape, self.bytes) = (name, dtype, shape, bytes)
        }
    }

    static func data(_ tensors: [Tensor], metadata: [String: String]? = nil) throws -> Data {
        var header: [String: Any] = [:]
        var offset = 0
        for tensor in tensors {
            header[tensor.name] = ["dtype": tensor.dtype, "shape": tensor.shape, "data_offsets": [offset, offset + tensor.bytes.count]]
            offset += tensor.bytes.count
        }
        if let metadata { header["__metadata__"] = metadata }
        return self.data(header: try JSONSerialization.data(withJSONObject: header, options: .sortedKeys), body: tensors.flatMap(\.bytes))
    }

    /// A file with this exact header text, padded with spaces to 8 bytes as the format asks.
    static func data(header: Data, body: [UInt8]) -> Data {
        var header = header
        while header.count % 8 != 0 { header.append(UInt8(ascii: " ")) }
        var file = Data()
        withUnsafeBytes(of: UInt64(header.count).littleEndian) { file.append(contentsOf: $0) }
        return file + header + body
    }
}
