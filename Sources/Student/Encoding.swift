import Foundation

/// Why bytes are not a stored student.
public enum StudentModelDecodingError: Error, Equatable, CustomStringConvertible {
    /// The bytes do not begin with the format's magic.
    case notAStudentModel
    case unsupportedVersion(UInt16)
    /// The bytes end before the model does.
    case truncated
    /// The bytes parse but their CRC-32C is not the stored one.
    case checksumMismatch
    /// Bytes follow the checksum.
    case trailingBytes(Int)
    /// Well-formed bytes that describe no valid model.
    case invalid(String)

    public var description: String {
        switch self {
        case .notAStudentModel: "not a student model"
        case .unsupportedVersion(let version): "student model format version \(version) is not supported"
        case .truncated: "the student model is truncated"
        case .checksumMismatch: "the student model is corrupt (checksum mismatch)"
        case .trailingBytes(let count): "\(count) bytes follow the student model"
        case .invalid(let reason): "invalid student model: \(reason)"
        }
    }
}

/// The stored form of a `StudentModel`, little-endian; version 2 when the model has novelty exemplars, else
/// version 1 (byte for byte what students were stored as before novelty, which decode as students without it):
///
/// ```
/// "DSTU"  u16 version
/// u32 classes, each: u32 support, u32 length, UTF-8 answer
/// u8 layers, each: u32 inputs, u32 outputs, f32 scales[outputs], f32 biases[outputs],
///                  i8 weights[outputs][inputs rounded up to 16]
/// f32 temperature, u8 has τ, f32 τ
/// u32 training count, u32 soft targets, u32 epochs, u32 best epoch, f64 ECE before, f64 ECE after,
/// u32 holdout count, u32 agreeing, u32 accepted, u32 agreeing accepted
/// version 2: f32 novelty threshold, f32 strict threshold, u32 exemplars[classes],
///            each exemplar: f32 scale, i8 weights[inputs rounded up to 16]
/// u32 CRC-32C of everything before it
/// ```
extension Student where Network == QuantizedNetwork {
    static let magic: [UInt8] = Array("DSTU".utf8)
    static let formatVersions: ClosedRange<UInt16> = 1...2

    public func encoded() -> Data {
        var writer = ByteWriter()
        writer.bytes.append(contentsOf: Self.magic)
        writer.append(UInt16(novelty == nil ? 1 : 2))
        writer.append(UInt32(classes.count))
        for (answer, support) in zip(classes.answers, classes.supports) {
            writer.append(UInt32(support))
            writer.append(UInt32(answer.utf8.count))
            writer.bytes.append(contentsOf: answer.utf8)
        }
        writer.append(UInt8(network.layers.count))
        for layer in network.layers {
            writer.append(UInt32(layer.inputCount))
            writer.append(UInt32(layer.outputCount))
            for scale in layer.scales { writer.append(scale.bitPattern) }
            for bias in layer.biases { writer.append(bias.bitPattern) }
            writer.bytes.append(contentsOf: layer.weights.map { UInt8(bitPattern: $0) })
        }
        writer.append(temperature.bitPattern)
        writer.append(UInt8(threshold == nil ? 0 : 1))
        writer.append((threshold ?? 0).bitPattern)
        for count in [report.trainingCount, report.softTargetCount, report.epochs, report.bestEpoch] {
            writer.append(UInt32(count))
        }
        writer.append(report.calibrationErrorBefore.bitPattern)
        writer.append(report.calibrationErrorAfter.bitPattern)
        let holdout = report.holdout
        for count in [holdout.count, holdout.agreeing, holdout.accepted, holdout.agreeingAccepted] {
            writer.append(UInt32(count))
        }
        if let novelty {
            writer.append(novelty.threshold.bitPattern)
            writer.append(novelty.strictThreshold.bitPattern)
            let exemplars = novelty.exemplars
            for c in 0..<classes.count { writer.append(UInt32(exemplars.classStarts[c + 1] - exemplars.classStarts[c])) }
            for (row, scale) in exemplars.scales.enumerated() {
                writer.append(scale.bitPattern)
                writer.bytes.append(
                    contentsOf: exemplars.weights[row * exemplars.stride..<(row + 1) * exemplars.stride].map { UInt8(bitPattern: $0) })
            }
        }
        writer.append(crc32c(writer.bytes))
        return Data(writer.bytes)
    }

    /// Decodes and validates `encoded()`'s bytes: structure, checksum, and every invariant of a model.
    public init(encoded data: Data) throws(StudentModelDecodingError) {
        var reader = ByteReader(bytes: Array(data))
        guard try reader.bytes(4).elementsEqual(Self.magic) else { throw .notAStudentModel }
        let version: UInt16 = try reader.read()
        guard Self.formatVersions.contains(version) else { throw .unsupportedVersion(version) }

        let classCount = Int(try reader.read() as UInt32)
        var answers: [String] = [], supports: [Int] = []
        for _ in 0..<classCount {
            supports.append(Int(try reader.read() as UInt32))
            let length = Int(try reader.read() as UInt32)
            guard let answer = String(validating: try reader.bytes(length), as: UTF8.self) else {
                throw .invalid("a class answer is not UTF-8")
            }
            answers.append(answer)
        }
        var layers: [QuantizedNetwork.Layer] = []
        for _ in 0..<(try reader.read() as UInt8) {
            let inputCount = Int(try reader.read() as UInt32), outputCount = Int(try reader.read() as UInt32)
            guard inputCount > 0, outputCount > 0 else { throw .invalid("a layer has no inputs or no outputs") }
            let scales: [Float] = try (0..<outputCount).map { _ throws(StudentModelDecodingError) in
                Float(bitPattern: try reader.read())
            }
            let biases: [Float] = try (0..<outputCount).map { _ throws(StudentModelDecodingError) in
                Float(bitPattern: try reader.read())
            }
            let stride = (inputCount + 15) / 16 * 16
            let (weightCount, overflow) = outputCount.multipliedReportingOverflow(by: stride)
            if overflow { throw .truncated }
            let weights = try reader.bytes(weightCount).map { Int8(bitPattern: $0) }
            guard scales.allSatisfy({ $0.isFinite && $0 >= 0 }), biases.allSatisfy(\.isFinite) else {
                throw .invalid("a layer's scales or biases are not finite")
            }
            guard validRows(weights, inputCount: inputCount) else {
                throw .invalid("a layer's weights are out of range or padded with non-zeros")
            }
            layers.append(
                QuantizedNetwork.Layer(
                    inputCount: inputCount, outputCount: outputCount, weights: weights, scales: scales, biases: biases))
        }
        let temperature = Float(bitPattern: try reader.read())
        let hasThreshold: UInt8 = try reader.read()
        let threshold = Float(bitPattern: try reader.read())
        let counts = try (0..<4).map { _ throws(StudentModelDecodingError) in Int(try reader.read() as UInt32) }
        let errors = try (0..<2).map { _ throws(StudentModelDecodingError) in Double(bitPattern: try reader.read()) }
        let holdout = try (0..<4).map { _ throws(StudentModelDecodingError) in Int(try reader.read() as UInt32) }
        var novelty: Novelty?
        if version == 2 {
            guard let dimension = layers.first?.inputCount else { throw .invalid("the model has no layers") }
            let threshold = Float(bitPattern: try reader.read()), strict = Float(bitPattern: try reader.read())
            var classStarts = [0]
            for _ in 0..<classCount {
                let (end, overflow) = classStarts[classStarts.count - 1].addingReportingOverflow(Int(try reader.read() as UInt32))
                if overflow { throw .truncated }
                classStarts.append(end)
            }
            let stride = (dimension + 15) / 16 * 16
            var scales: [Float] = [], weights: [Int8] = []
            for _ in 0..<classStarts[classCount] {
                scales.append(Float(bitPattern: try reader.read()))
                weights += try reader.bytes(stride).map { Int8(bitPattern: $0) }
            }
            guard scales.allSatisfy({ $0.isFinite && $0 >= 0 }), validRows(weights, inputCount: dimension) else {
                throw .invalid("the novelty exemplars are out of range or padded with non-zeros")
            }
            guard (0...2).contains(threshold), (0...threshold).contains(strict) else {
                throw .invalid("the novelty thresholds are not distances, or the strict one is above the other")
            }
            novelty = Novelty(
                exemplars: Exemplars(dimension: dimension, classStarts: classStarts, weights: weights, scales: scales),
                threshold: threshold, strictThreshold: strict)
        }
        let checksum = crc32c(reader.bytes[..<reader.offset])
        guard try reader.read() as UInt32 == checksum else { throw .checksumMismatch }
        guard reader.remaining == 0 else { throw .trailingBytes(reader.remaining) }

        let classes = try AnswerClasses(answers: answers, supports: supports)
        guard !layers.isEmpty, zip(layers, layers.dropFirst()).allSatisfy({ $0.outputCount == $1.inputCount }),
            layers[layers.count - 1].outputCount == classes.outputCount, classes.count > 0
        else { throw .invalid("the layers do not chain from the embedding to the classes and the rest") }
        guard temperature.isFinite, temperature > 0 else { throw .invalid("the temperature is not positive") }
        guard hasThreshold <= 1, hasThreshold == 0 || (0...1).contains(threshold) else {
            throw .invalid("τ is not a probability")
        }
        let metrics = HoldoutMetrics(count: holdout[0], agreeing: holdout[1], accepted: holdout[2], agreeingAccepted: holdout[3])
        guard metrics.agreeing <= metrics.count, metrics.accepted <= metrics.count,
            metrics.agreeingAccepted <= min(metrics.agreeing, metrics.accepted), counts[1] <= counts[0],
            counts[3] <= counts[2], errors.allSatisfy({ (0...1).contains($0) })
        else { throw .invalid("the training report is inconsistent") }
        self.init(
            classes: classes, network: QuantizedNetwork(layers: layers), temperature: temperature,
            threshold: hasThreshold == 1 ? threshold : nil, novelty: novelty,
            report: TrainingReport(
                trainingCount: counts[0], softTargetCount: counts[1], epochs: counts[2], bestEpoch: counts[3],
                calibrationErrorBefore: errors[0], calibrationErrorAfter: errors[1], holdout: metrics))
    }
}

/// Whether int8 rows of `inputCount` values, each padded to the kernel's 16 lanes, are within −127…127 and padded
/// with zeros.
private func validRows(_ weights: [Int8], inputCount: Int) -> Bool {
    let length = (inputCount + 15) / 16 * 16
    return stride(from: 0, to: weights.count, by: length).allSatisfy { start in
        weights[start..<start + length].allSatisfy { $0 != -128 } && weights[start + inputCount..<start + length].allSatisfy { $0 == 0 }
    }
}

private struct ByteWriter {
    var bytes: [UInt8] = []

    mutating func append<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }
}

private struct ByteReader {
    let bytes: [UInt8]
    var offset = 0

    var remaining: Int { bytes.count - offset }

    mutating func bytes(_ count: Int) throws(StudentModelDecodingError) -> ArraySlice<UInt8> {
        guard count <= remaining else { throw .truncated }
        defer { offset += count }
        return bytes[offset..<offset + count]
    }

    mutating func read<T: FixedWidthInteger>() throws(StudentModelDecodingError) -> T {
        var value = T.zero
        for (shift, byte) in try bytes(MemoryLayout<T>.size).enumerated() { value |= T(byte) << (8 * shift) }
        return value
    }
}

/// CRC-32C (Castagnoli), a byte at a time from a table: a model is a few hundred kilobytes, decoded rarely.
func crc32c(_ bytes: some Collection<UInt8>) -> UInt32 {
    var crc: UInt32 = 0xFFFF_FFFF
    for byte in bytes { crc = crcTable[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8) }
    return ~crc
}

private let crcTable: [UInt32] = (0..<256).map { index in
    var value = UInt32(index)
    for _ in 0..<8 { value = value & 1 == 1 ? (value >> 1) ^ 0x82F6_3B78 : value >> 1 }
    return value
}
