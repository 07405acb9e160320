// Snapshot format, version 1. All integers little-endian.
//
//   preamble (24 bytes)
//     0   magic          8 bytes  "DSTLVIDX"
//     8   version        u32      1
//     12  body length    u64      bytes after the preamble
//     20  checksum       u32      CRC-32C of the body
//   body
//     model identity     u32 byte count + UTF-8
//     dimension          u32
//     watermark          i64      the caller's: highest entry id included
//     kind               u8       0 flat, 1 HNSW
//     m, efConstruction, efSearch   u32 each
//     seed               u64
//     payload            FlatIndex.encode / HNSWGraph.encode
//
// Vectors are stored unpadded, as `dimension` f32 each.

#if _endian(big)
#error("snapshots are copied to and from memory as little-endian")
#endif

/// Why `ScopeIndex.restore` refused a snapshot. Whatever the case, the way forward is a rebuild
/// from the stored vectors.
public enum SnapshotError: Error, Equatable, Sendable {
    /// Shorter than its header says: an interrupted write.
    case truncated
    /// Does not start with the snapshot magic.
    case notASnapshot
    case unsupportedVersion(UInt32)
    /// The body does not match its checksum: corrupted on disk or in transit.
    case checksumMismatch
    /// Written for another embedding model; its vectors must not be mixed with this one's.
    case modelMismatch(expected: String, found: String)
    case dimensionMismatch(expected: Int, found: Int)
    /// The graph was built with another m or efConstruction than configured.
    case parametersMismatch(expected: HNSWParameters, found: HNSWParameters)
    /// Checksum intact but the content is inconsistent (a bug in the writer, or a forgery).
    case malformed(String)
}

enum SnapshotFormat {
    static let magic: [UInt8] = Array("DSTLVIDX".utf8)
    static let version: UInt32 = 1
    static let preambleSize = 24
    static let flatKind: UInt8 = 0
    static let graphKind: UInt8 = 1
}

extension ScopeIndex {
    /// The index as bytes, with `watermark` — the highest entry id it includes — recorded for
    /// the caller's replay. Searches continue meanwhile; writers wait.
    public func snapshot(watermark: Int64) -> [UInt8] {
        withStableStructure { structure in
            var writer = SnapshotWriter()
            writer.bytes.append(contentsOf: SnapshotFormat.magic)
            writer.append(SnapshotFormat.version)
            writer.append(UInt64(0))  // body length, patched below
            writer.append(UInt32(0))  // checksum, patched below
            writer.append(string: configuration.model)
            writer.append(UInt32(configuration.dimension))
            writer.append(watermark)
            let hnsw = configuration.hnsw
            switch structure {
            case .flat(let flat):
                writer.append(SnapshotFormat.flatKind)
                writer.append(hnsw)
                flat.encode(into: &writer)
            case .graph(let graph):
                writer.append(SnapshotFormat.graphKind)
                writer.append(graph.parameters)
                graph.encode(into: &writer)
            }
            let bodyLength = writer.bytes.count - SnapshotFormat.preambleSize
            let checksum = writer.bytes.withUnsafeBytes {
                CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[SnapshotFormat.preambleSize...]))
            }
            writer.patch(UInt64(bodyLength), at: 12)
            writer.patch(checksum, at: 20)
            return writer.bytes
        }
    }

    /// Decodes a snapshot made by `snapshot(watermark:)` for the same model, dimension and graph
    /// parameters (`efSearch` comes from `configuration`), returning the index and the watermark
    /// it was written with. Every structural fact is checked, so no input can make it trap.
    public static func restore(
        from bytes: UnsafeRawBufferPointer, configuration: IndexConfiguration
    ) throws(SnapshotError) -> (index: ScopeIndex, watermark: Int64) {
        let magic = SnapshotFormat.magic
        guard bytes.count >= magic.count else { throw .truncated }
        guard bytes.prefix(magic.count).elementsEqual(magic) else { throw .notASnapshot }
        guard bytes.count >= SnapshotFormat.preambleSize else { throw .truncated }
        var preamble = SnapshotReader(UnsafeRawBufferPointer(rebasing: bytes[magic.count..<SnapshotFormat.preambleSize]))
        let version = try preamble.read(UInt32.self)
        guard version == SnapshotFormat.version else { throw .unsupportedVersion(version) }
        let bodyLength = try preamble.read(UInt64.self)
        let checksum = try preamble.read(UInt32.self)
        let available = bytes.count - SnapshotFormat.preambleSize
        guard bodyLength <= UInt64(available) else { throw .truncated }
        guard bodyLength == UInt64(available) else { throw .malformed("\(UInt64(available) - bodyLength) bytes after the body") }
        let body = UnsafeRawBufferPointer(rebasing: bytes[SnapshotFormat.preambleSize...])
        guard CRC32C.checksum(body) == checksum else { throw .checksumMismatch }

        var reader = SnapshotReader(body)
        let model = try reader.readString()
        guard model == configuration.model else { throw .modelMismatch(expected: configuration.model, found: model) }
        let dimension = Int(try reader.read(UInt32.self))
        guard dimension == configuration.dimension else {
            throw .dimensionMismatch(expected: configuration.dimension, found: dimension)
        }
        let watermark = try reader.read(Int64.self)
        let kind = try reader.read(UInt8.self)
        let parameters = try reader.readParameters()
        let structure: Structure
        switch kind {
        case SnapshotFormat.flatKind:
            structure = .flat(try FlatIndex(decoding: &reader, dimension: dimension))
        case SnapshotFormat.graphKind:
            let expected = configuration.hnsw
            guard parameters.m == expected.m && parameters.efConstruction == expected.efConstruction else {
                throw .parametersMismatch(expected: expected, found: parameters)
            }
            structure = .graph(try HNSWGraph(decoding: &reader, dimension: dimension, parameters: expected))
        default:
            throw .malformed("unknown index kind \(kind)")
        }
        guard reader.remaining == 0 else { throw .malformed("\(reader.remaining) bytes after the payload") }
        return (ScopeIndex(configuration: configuration, structure: structure), watermark)
    }

    public static func restore(
        from bytes: [UInt8], configuration: IndexConfiguration
    ) throws(SnapshotError) -> (index: ScopeIndex, watermark: Int64) {
        let result = bytes.withUnsafeBytes { bytes in
            Result { () throws(SnapshotError) in try restore(from: bytes, configuration: configuration) }
        }
        return try result.get()
    }
}

/// Appends little-endian values to a byte array.
struct SnapshotWriter {
    var bytes: [UInt8] = []

    mutating func append<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    mutating func append(string: String) {
        append(UInt32(string.utf8.count))
        bytes.append(contentsOf: string.utf8)
    }

    mutating func append(_ parameters: HNSWParameters) {
        append(UInt32(parameters.m))
        append(UInt32(parameters.efConstruction))
        append(UInt32(parameters.efSearch))
        append(parameters.seed)
    }

    /// Appends `count` values from memory as they are (the host is little-endian).
    mutating func append<T>(raw source: UnsafePointer<T>, count: Int) {
        bytes.append(contentsOf: UnsafeRawBufferPointer(start: source, count: count * MemoryLayout<T>.stride))
    }

    mutating func patch<T: FixedWidthInteger>(_ value: T, at offset: Int) {
        withUnsafeBytes(of: value.littleEndian) { value in
            bytes.withUnsafeMutableBytes { $0.baseAddress!.advanced(by: offset).copyMemory(from: value.baseAddress!, byteCount: value.count) }
        }
    }
}

/// Reads little-endian values, with every length checked against the bytes that remain.
struct SnapshotReader {
    private let bytes: UnsafeRawBufferPointer
    private var offset = 0

    init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    var remaining: Int { bytes.count - offset }

    mutating func take(_ count: Int) throws(SnapshotError) -> UnsafeRawBufferPointer {
        guard count >= 0 && count <= remaining else { throw .malformed("payload ends \(count - remaining) bytes early") }
        defer { offset += count }
        return UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + count)])
    }

    mutating func read<T: FixedWidthInteger>(_: T.Type) throws(SnapshotError) -> T {
        T(littleEndian: try take(MemoryLayout<T>.size).loadUnaligned(as: T.self))
    }

    mutating func readString() throws(SnapshotError) -> String {
        let length = Int(try read(UInt32.self))
        return String(decoding: try take(length), as: UTF8.self)
    }

    mutating func readParameters() throws(SnapshotError) -> HNSWParameters {
        let m = Int(try read(UInt32.self))
        let efConstruction = Int(try read(UInt32.self))
        let efSearch = Int(try read(UInt32.self))
        let seed = try read(UInt64.self)
        guard (2...255).contains(m) && efConstruction >= 1 && efSearch >= 1 else {
            throw .malformed("invalid graph parameters")
        }
        return HNSWParameters(m: m, efConstruction: efConstruction, efSearch: efSearch, seed: seed)
    }

    /// Reads an element count, checking that `bytesEach` bytes per element can still follow,
    /// so that a bad count is refused before anything is allocated for it.
    mutating func readCount(bytesEach: Int) throws(SnapshotError) -> Int {
        let count = try read(UInt64.self)
        guard count <= UInt64(remaining / max(bytesEach, 1)) else {
            throw .malformed("count \(count) exceeds the remaining \(remaining) bytes")
        }
        return Int(count)
    }

    mutating func readArray<T: FixedWidthInteger>(_: T.Type, count: Int) throws(SnapshotError) -> [T] {
        let source = try take(try byteCount(count, of: T.self))
        return [T](unsafeUninitializedCapacity: count) { buffer, initialized in
            UnsafeMutableRawBufferPointer(buffer).copyMemory(from: source)
            initialized = count
        }
    }

    /// Copies `count` values into memory as they are (the host is little-endian).
    mutating func copy<T>(into destination: UnsafeMutablePointer<T>, count: Int) throws(SnapshotError) {
        let source = try take(try byteCount(count, of: T.self))
        if let start = source.baseAddress { UnsafeMutableRawPointer(destination).copyMemory(from: start, byteCount: source.count) }
    }

    private func byteCount<T>(_ count: Int, of _: T.Type) throws(SnapshotError) -> Int {
        let (bytes, overflow) = count.multipliedReportingOverflow(by: MemoryLayout<T>.stride)
        guard !overflow else { throw .malformed("count \(count) overflows") }
        return bytes
    }
}

/// CRC-32C (Castagnoli), the checksum of iSCSI, ext4 and LevelDB: detects every burst error up
/// to 32 bits. Slicing-by-8 tables process eight bytes per step.
enum CRC32C {
    private static let tables: [UInt32] = {
        var tables = [UInt32](repeating: 0, count: 8 * 256)
        for byte in 0..<256 {
            var crc = UInt32(byte)
            for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1 }
            tables[byte] = crc
        }
        for table in 1..<8 {
            for byte in 0..<256 {
                let previous = tables[(table - 1) * 256 + byte]
                tables[table * 256 + byte] = (previous >> 8) ^ tables[Int(previous & 0xFF)]
            }
        }
        return tables
    }()

    static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        tables.withUnsafeBufferPointer { t in
            var crc: UInt32 = ~0
            var offset = 0
            while offset + 8 <= bytes.count {
                let low = crc ^ UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
                let high = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self))
                crc = t[7 * 256 + Int(low & 0xFF)] ^ t[6 * 256 + Int((low >> 8) & 0xFF)]
                    ^ t[5 * 256 + Int((low >> 16) & 0xFF)] ^ t[4 * 256 + Int(low >> 24)]
                    ^ t[3 * 256 + Int(high & 0xFF)] ^ t[2 * 256 + Int((high >> 8) & 0xFF)]
                    ^ t[1 * 256 + Int((high >> 16) & 0xFF)] ^ t[Int(high >> 24)]
                offset += 8
            }
            while offset < bytes.count {
                crc = t[Int((crc ^ UInt32(bytes[offset])) & 0xFF)] ^ (crc >> 8)
                offset += 1
            }
            return ~crc
        }
    }
}
