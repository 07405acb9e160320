import Foundation

#if canImport(Darwin)
import Darwin
#elseif canImport(Glibc)
import Glibc
#endif

/// Element types of the safetensors format.
public enum SafetensorsDType: String, Sendable, CaseIterable {
    case bool = "BOOL"
    case u8 = "U8", i8 = "I8", f8e5m2 = "F8_E5M2", f8e4m3 = "F8_E4M3"
    case u16 = "U16", i16 = "I16", f16 = "F16", bf16 = "BF16"
    case u32 = "U32", i32 = "I32", f32 = "F32"
    case u64 = "U64", i64 = "I64", f64 = "F64"

    public var byteCount: Int {
        switch self {
        case .bool, .u8, .i8, .f8e5m2, .f8e4m3: 1
        case .u16, .i16, .f16, .bf16: 2
        case .u32, .i32, .f32: 4
        case .u64, .i64, .f64: 8
        }
    }
}

public struct SafetensorsTensorInfo: Sendable, Equatable {
    public let dtype: SafetensorsDType
    public let shape: [Int]
    /// Byte range inside the data section (which starts right after the header).
    public let byteRange: Range<Int>

    public var elementCount: Int { shape.reduce(1, *) }
}

public enum SafetensorsError: Error, Equatable, CustomStringConvertible {
    case fileNotFound(path: String)
    case cannotOpen(path: String, reason: String)
    /// The file ends before the header or a tensor it declares.
    case truncated(path: String, reason: String)
    /// The header is not a valid safetensors header.
    case invalidHeader(path: String, reason: String)
    case missingTensor(path: String, name: String)
    case wrongDType(path: String, name: String, expected: SafetensorsDType, actual: SafetensorsDType)
    case wrongShape(path: String, name: String, expected: [Int], actual: [Int])

    public var description: String {
        switch self {
        case .fileNotFound(let path): "safetensors file not found: \(path)"
        case .cannotOpen(let path, let reason): "cannot open safetensors file \(path): \(reason)"
        case .truncated(let path, let reason): "truncated safetensors file \(path): \(reason)"
        case .invalidHeader(let path, let reason): "invalid safetensors header in \(path): \(reason)"
        case .missingTensor(let path, let name): "tensor '\(name)' not found in \(path)"
        case .wrongDType(let path, let name, let expected, let actual):
            "tensor '\(name)' in \(path) is \(actual.rawValue), expected \(expected.rawValue)"
        case .wrongShape(let path, let name, let expected, let actual):
            "tensor '\(name)' in \(path) has shape \(actual), expected \(expected)"
        }
    }
}

/// A read-only, memory-mapped safetensors file (https://github.com/huggingface/safetensors).
///
/// The header is validated as strictly as the reference implementation does: known dtypes, sizes that
/// match shapes, and tensors that tile the data section exactly (no gaps, overlaps or trailing bytes).
/// The mapping lives as long as the object; not `Sendable` because `bytes` points into it.
public final class SafetensorsFile {
    public let path: String
    public let tensors: [String: SafetensorsTensorInfo]
    /// The optional `__metadata__` string map.
    public let metadata: [String: String]
    /// The whole file, mapped read-only.
    public let bytes: UnsafeRawBufferPointer
    private let dataOffset: Int

    /// The format's own limit on the header size, which also bounds what a corrupt length can make us parse.
    static let maxHeaderLength = 100_000_000

    public init(path: String) throws(SafetensorsError) {
        self.path = path
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            let code = errno
            if code == ENOENT { throw .fileNotFound(path: path) }
            throw .cannotOpen(path: path, reason: String(cString: strerror(code)))
        }
        defer { close(fd) }
        var status = stat()
        guard fstat(fd, &status) == 0 else {
            throw .cannotOpen(path: path, reason: String(cString: strerror(errno)))
        }
        guard (status.st_mode & S_IFMT) == S_IFREG else { throw .cannotOpen(path: path, reason: "not a regular file") }
        let fileSize = Int(status.st_size)
        guard fileSize >= 8 else {
            throw .truncated(path: path, reason: "\(fileSize) bytes, shorter than the 8-byte header length")
        }
        guard let base = mmap(nil, fileSize, PROT_READ, MAP_PRIVATE, fd, 0), base != MAP_FAILED else {
            throw .cannotOpen(path: path, reason: "mmap: " + String(cString: strerror(errno)))
        }
        let bytes = UnsafeRawBufferPointer(start: base, count: fileSize)
        do {
            let parsed = try Self.parseHeader(bytes, path: path)
            self.tensors = parsed.tensors
            self.metadata = parsed.metadata
            self.dataOffset = parsed.dataOffset
            self.bytes = bytes
        } catch {
            munmap(base, fileSize)
            throw error
        }
    }

    deinit {
        munmap(UnsafeMutableRawPointer(mutating: bytes.baseAddress), bytes.count)
    }

    /// The tensor's description, after checking that it exists with this dtype and shape.
    public func tensor(
        _ name: String, dtype: SafetensorsDType, shape: [Int]
    ) throws(SafetensorsError) -> SafetensorsTensorInfo {
        guard let info = tensors[name] else { throw .missingTensor(path: path, name: name) }
        guard info.dtype == dtype else {
            throw .wrongDType(path: path, name: name, expected: dtype, actual: info.dtype)
        }
        guard info.shape == shape else { throw .wrongShape(path: path, name: name, expected: shape, actual: info.shape) }
        return info
    }

    /// Copies an F32 tensor of the given shape into `destination` (which must hold `shape`'s element count).
    /// Copying, rather than handing out a pointer, is alignment-agnostic and leaves the caller free of the mapping.
    /// The copied pages then leave this process's resident set (they stay in the page cache), so loading a model
    /// never holds its weights twice.
    public func copyFloats(
        _ name: String, shape: [Int], into destination: UnsafeMutablePointer<Float>
    ) throws(SafetensorsError) {
        let info = try tensor(name, dtype: .f32, shape: shape)
        let source = bytes.baseAddress! + dataOffset + info.byteRange.lowerBound
        UnsafeMutableRawPointer(destination).copyMemory(from: source, byteCount: info.byteRange.count)
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let first = (source - bytes.baseAddress!) / page * page
        let end = min(bytes.count, (source - bytes.baseAddress! + info.byteRange.count + page - 1) / page * page)
        madvise(UnsafeMutableRawPointer(mutating: bytes.baseAddress! + first), end - first, MADV_DONTNEED)
    }

    private struct HeaderEntry: Decodable {
        let dtype: String
        let shape: [Int]
        let data_offsets: [Int]
    }

    private struct DynamicKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    private struct Header: Decodable {
        var entries: [String: HeaderEntry] = [:]
        var metadata: [String: String] = [:]

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: DynamicKey.self)
            for key in container.allKeys {
                if key.stringValue == "__metadata__" {
                    metadata = try container.decode([String: String].self, forKey: key)
                } else {
                    entries[key.stringValue] = try container.decode(HeaderEntry.self, forKey: key)
                }
            }
        }
    }

    private static func parseHeader(
        _ bytes: UnsafeRawBufferPointer, path: String
    ) throws(SafetensorsError) -> (tensors: [String: SafetensorsTensorInfo], metadata: [String: String], dataOffset: Int) {
        let declared = UInt64(littleEndian: bytes.loadUnaligned(as: UInt64.self))
        guard declared <= UInt64(maxHeaderLength) else {
            throw .invalidHeader(path: path, reason: "header length \(declared) exceeds the format's limit")
        }
        let headerLength = Int(declared)
        guard headerLength <= bytes.count - 8 else {
            throw .truncated(
                path: path, reason: "header declares \(headerLength) bytes but only \(bytes.count - 8) follow")
        }
        let headerBytes = UnsafeRawBufferPointer(rebasing: bytes[8..<(8 + headerLength)])
        guard headerBytes.first == UInt8(ascii: "{") else {
            throw .invalidHeader(path: path, reason: "header is not a JSON object")
        }
        let header: Header
        do {
            header = try JSONDecoder().decode(Header.self, from: Data(headerBytes))
        } catch {
            throw .invalidHeader(path: path, reason: "\(error)")
        }

        let dataOffset = 8 + headerLength
        let dataLength = bytes.count - dataOffset
        var tensors: [String: SafetensorsTensorInfo] = [:]
        for (name, entry) in header.entries {
            guard let dtype = SafetensorsDType(rawValue: entry.dtype) else {
                throw .invalidHeader(path: path, reason: "tensor '\(name)' has unknown dtype \(entry.dtype)")
            }
            guard entry.shape.allSatisfy({ $0 >= 0 }) else {
                throw .invalidHeader(path: path, reason: "tensor '\(name)' has a negative dimension \(entry.shape)")
            }
            guard entry.data_offsets.count == 2, entry.data_offsets[0] >= 0, entry.data_offsets[0] <= entry.data_offsets[1]
            else {
                throw .invalidHeader(path: path, reason: "tensor '\(name)' has invalid data_offsets \(entry.data_offsets)")
            }
            var elements = 1
            for dimension in entry.shape {
                let (product, overflow) = elements.multipliedReportingOverflow(by: dimension)
                guard !overflow else { throw .invalidHeader(path: path, reason: "tensor '\(name)' is too large") }
                elements = product
            }
            let range = entry.data_offsets[0]..<entry.data_offsets[1]
            guard range.count == elements * dtype.byteCount else {
                throw .invalidHeader(
                    path: path,
                    reason: "tensor '\(name)' spans \(range.count) bytes, but \(dtype.rawValue)\(entry.shape) needs "
                        + "\(elements * dtype.byteCount)")
            }
            guard range.upperBound <= dataLength else {
                throw .truncated(
                    path: path,
                    reason: "tensor '\(name)' ends at data byte \(range.upperBound), but the data section has \(dataLength)")
            }
            tensors[name] = SafetensorsTensorInfo(dtype: dtype, shape: entry.shape, byteRange: range)
        }

        // The tensors must tile the data section exactly (empty tensors sort before the one at their offset).
        var end = 0
        let ordered = tensors.sorted {
            ($0.value.byteRange.lowerBound, $0.value.byteRange.upperBound)
                < ($1.value.byteRange.lowerBound, $1.value.byteRange.upperBound)
        }
        for (name, info) in ordered {
            guard info.byteRange.lowerBound == end else {
                throw .invalidHeader(
                    path: path, reason: "tensor '\(name)' starts at data byte \(info.byteRange.lowerBound), expected \(end)")
            }
            end = info.byteRange.upperBound
        }
        guard end == dataLength else {
            throw .invalidHeader(path: path, reason: "\(dataLength - end) bytes after the last tensor")
        }
        return (tensors, header.metadata, dataOffset)
    }
}
