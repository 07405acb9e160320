import Foundation
import Testing

@testable import Embedding

@Suite struct SafetensorsTests {
    let directory: TemporaryDirectory

    init() throws { directory = try TemporaryDirectory() }

    func write(_ data: Data, name: String = "model.safetensors") throws -> String {
        let url = directory.url.appendingPathComponent(name)
        try data.write(to: url)
        return url.path
    }

    func write(header: String, body: [UInt8] = []) throws -> String {
        try write(SafetensorsWriter.data(header: Data(header.utf8), body: body))
    }

    @Test func readsTensorsAndMetadata() throws {
        let path = try write(
            SafetensorsWriter.data(
                [
                    .init("ids", dtype: "I64", shape: [1, 2], bytes: Array(repeating: 0, count: 16)),
                    .init("matrix", shape: [2, 3], floats: [1, 2, 3, 4, 5, 6]),
                    .init("empty", shape: [0], floats: []),
                    .init("bias", shape: [3], floats: [-1, 0.5, 7]),
                ], metadata: ["format": "pt"]))
        let file = try SafetensorsFile(path: path)
        #expect(file.metadata == ["format": "pt"])
        #expect(Set(file.tensors.keys) == ["ids", "matrix", "empty", "bias"])
        #expect(file.tensors["ids"] == SafetensorsTensorInfo(dtype: .i64, shape: [1, 2], byteRange: 0..<16))
        #expect(file.tensors["bias"] == SafetensorsTensorInfo(dtype: .f32, shape: [3], byteRange: 40..<52))
        var matrix = [Float](repeating: 0, count: 6)
        try matrix.withUnsafeMutableBufferPointer { try file.copyFloats("matrix", shape: [2, 3], into: $0.baseAddress!) }
        #expect(matrix == [1, 2, 3, 4, 5, 6])
        var bias = [Float](repeating: 0, count: 3)
        try bias.withUnsafeMutableBufferPointer { try file.copyFloats("bias", shape: [3], into: $0.baseAddress!) }
        #expect(bias == [-1, 0.5, 7])
        #expect(file.bytes.count == 8 + Int(file.bytes.loadUnaligned(as: UInt64.self)) + 52)
    }

    @Test func checksNameDTypeAndShape() throws {
        let path = try write(SafetensorsWriter.data([.init("w", shape: [2, 2], floats: [1, 2, 3, 4])]))
        let file = try SafetensorsFile(path: path)
        var out = [Float](repeating: 0, count: 4)
        out.withUnsafeMutableBufferPointer { out in
            #expect(throws: SafetensorsError.missingTensor(path: path, name: "v")) {
                try file.copyFloats("v", shape: [2, 2], into: out.baseAddress!)
            }
            #expect(throws: SafetensorsError.wrongShape(path: path, name: "w", expected: [4], actual: [2, 2])) {
                try file.copyFloats("w", shape: [4], into: out.baseAddress!)
            }
        }
        #expect(throws: SafetensorsError.wrongDType(path: path, name: "w", expected: .f16, actual: .f32)) {
            try file.tensor("w", dtype: .f16, shape: [2, 2])
        }
    }

    @Test func missingFile() throws {
        let path = directory.url.appendingPathComponent("absent.safetensors").path
        #expect(throws: SafetensorsError.fileNotFound(path: path)) { try SafetensorsFile(path: path) }
    }

    @Test func directoryInsteadOfAFile() throws {
        #expect(throws: SafetensorsError.cannotOpen(path: directory.url.path, reason: "not a regular file")) {
            try SafetensorsFile(path: directory.url.path)
        }
    }

    @Test(arguments: [0, 7])
    func shorterThanTheHeaderLength(size: Int) throws {
        let path = try write(Data(repeating: 0, count: size))
        #expect(throws: SafetensorsError.truncated(path: path, reason: "\(size) bytes, shorter than the 8-byte header length")) {
            try SafetensorsFile(path: path)
        }
    }

    @Test func headerLongerThanTheFile() throws {
        let whole = try SafetensorsWriter.data([.init("w", shape: [1], floats: [1])])
        let path = try write(whole.prefix(20))
        #expect(throws: SafetensorsError.truncated(path: path, reason: "header declares \(whole.count - 12) bytes but only 12 follow")) {
            try SafetensorsFile(path: path)
        }
    }

    @Test func tensorBeyondTheEndOfTheFile() throws {
        let whole = try SafetensorsWriter.data([.init("w", shape: [4], floats: [1, 2, 3, 4])])
        let path = try write(whole.prefix(whole.count - 1))
        #expect(throws: SafetensorsError.truncated(path: path, reason: "tensor 'w' ends at data byte 16, but the data section has 15")) {
            try SafetensorsFile(path: path)
        }
    }

    @Test func headerLengthBeyondTheFormatsLimit() throws {
        var data = Data()
        withUnsafeBytes(of: UInt64(200_000_000).littleEndian) { data.append(contentsOf: $0) }
        let path = try write(data + Data("{}".utf8))
        #expect(throws: SafetensorsError.invalidHeader(path: path, reason: "header length 200000000 exceeds the format's limit")) {
            try SafetensorsFile(path: path)
        }
    }

    @Test(arguments: [
        ("[1, 2]", "header is not a JSON object"),
        (#"{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}"#, nil),  // cut JSON
        (#"{"w": {"dtype": "F33", "shape": [1], "data_offsets": [0, 4]}}"#, "tensor 'w' has unknown dtype F33"),
        (#"{"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}"#, "tensor 'w' has a negative dimension [-1]"),
        (#"{"w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}}"#, "tensor 'w' has invalid data_offsets [4, 0]"),
        (#"{"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}"#, "tensor 'w' spans 4 bytes, but F32[2] needs 8"),
        (#"{"w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}"#, "tensor 'w' starts at data byte 4, expected 0"),
        (#"{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}"#, "4 bytes after the last tensor"),
        (#"{"w": {"dtype": "F32", "shape": [1]}}"#, nil),
    ] as [(String, String?)])
    func invalidHeader(header: String, reason: String?) throws {
        let path = try write(header: header, body: Array(repeating: 0, count: 8))
        #expect {
            try SafetensorsFile(path: path)
        } throws: { error in
            guard case .invalidHeader(let errorPath, let errorReason) = error as? SafetensorsError else { return false }
            return errorPath == path && (reason == nil || errorReason == reason)
        }
    }
}
