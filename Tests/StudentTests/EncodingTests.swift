import Foundation
import Testing

@testable import Student

@Suite struct EncodingTests {
    static let model = try! StudentTrainer.train(
        SyntheticTraffic.exchanges(count: 400, seed: 6), configuration: SyntheticTraffic.configuration
    ).model

    @Test func aModelSurvivesItsEncoding() throws {
        let model = Self.model
        let bytes = model.encoded()
        let decoded = try StudentModel(encoded: bytes)
        #expect(decoded.classes == model.classes)
        #expect(decoded.network == model.network)
        #expect(decoded.temperature == model.temperature)
        #expect(decoded.threshold == model.threshold && model.threshold != nil)
        #expect(decoded.novelty == model.novelty && model.novelty != nil)
        #expect(decoded.report == model.report)
        #expect(decoded.encoded() == bytes)
        for exchange in SyntheticTraffic.exchanges(count: 50, seed: 7) {
            #expect(decoded.predict(exchange.embedding) == model.predict(exchange.embedding))
        }
    }

    @Test func aModelWithoutThresholdSurvivesItsEncoding() throws {
        let model = Self.model
        let unsure = StudentModel(
            classes: model.classes, network: model.network, temperature: model.temperature, threshold: nil,
            report: model.report)
        let decoded = try StudentModel(encoded: unsure.encoded())
        #expect(decoded.threshold == nil && decoded.novelty == nil)
        #expect(!decoded.predict(SyntheticTraffic.exchanges(count: 1, seed: 7)[0].embedding).isConfident)
    }

    @Test func everyTruncationIsDetected() {
        let bytes = Self.model.encoded()
        for length in 0..<bytes.count {
            #expect(throws: StudentModelDecodingError.truncated) { try StudentModel(encoded: bytes.prefix(length)) }
        }
        #expect(throws: StudentModelDecodingError.trailingBytes(1)) { try StudentModel(encoded: bytes + [0]) }
    }

    @Test func everyCorruptByteIsDetected() {
        let bytes = Self.model.encoded()
        for index in bytes.indices {
            var corrupt = bytes
            corrupt[index] ^= 0x10
            #expect(throws: StudentModelDecodingError.self) { try StudentModel(encoded: corrupt) }
        }
        // A flipped weight parses: only the checksum can tell.
        var corrupt = bytes
        corrupt[bytes.count / 2] ^= 0x01
        #expect(throws: StudentModelDecodingError.checksumMismatch) { try StudentModel(encoded: corrupt) }
    }

    @Test func foreignBytesAndOtherVersionsAreRefused() {
        var bytes = Self.model.encoded()
        #expect(throws: StudentModelDecodingError.notAStudentModel) { try StudentModel(encoded: Data("SQLite format 3".utf8)) }
        bytes[4] = 3
        #expect(throws: StudentModelDecodingError.unsupportedVersion(3)) { try StudentModel(encoded: bytes) }
    }

    /// A model stored before novelty was measured is version 1, which a model without novelty still encodes as,
    /// byte for byte: it decodes without novelty information and serves on its confidence alone, as it did.
    @Test func aModelWithoutNoveltyIsStoredAsBeforeAndServesOnItsConfidence() throws {
        let model = Self.model
        let old = StudentModel(
            classes: model.classes, network: model.network, temperature: model.temperature, threshold: model.threshold,
            report: model.report)
        let bytes = old.encoded()
        #expect(bytes[4] == 1 && bytes[5] == 0 && model.encoded()[4] == 2)
        // Version 1 is version 2 without its novelty section.
        #expect(bytes.count == model.encoded().count - Self.noveltyBytes(model))
        let decoded = try StudentModel(encoded: bytes)
        #expect(decoded.novelty == nil && decoded.encoded() == bytes)
        for exchange in SyntheticTraffic.exchanges(count: 50, seed: 7) {
            let prediction = decoded.predict(exchange.embedding), served = model.predict(exchange.embedding)
            #expect(prediction.novelty == nil && !prediction.novel && !prediction.borderline)
            #expect(prediction.serves(shiftSuspected: true) == served.isConfident)
        }
    }

    /// The novelty section: two thresholds, a count per class, and a scale and a padded row per exemplar.
    static func noveltyBytes(_ model: StudentModel) -> Int {
        let exemplars = model.novelty!.exemplars
        return 8 + 4 * model.classes.count + exemplars.scales.count * (4 + exemplars.stride)
    }

    /// Bytes with a valid checksum that describe no valid model.
    @Test func invalidContentIsRefusedEvenWithAValidChecksum() {
        let bytes = Self.model.encoded()
        func resealed(_ change: (inout Data) -> Void) -> Data {
            var data = bytes
            change(&data)
            let checksum = crc32c(data.prefix(data.count - 4))
            withUnsafeBytes(of: checksum.littleEndian) { data.replaceSubrange(data.count - 4..<data.count, with: $0) }
            return data
        }
        // The temperature sits before τ's flag and value, four counts, two ECEs, four counts, the novelty section and
        // the checksum.
        let novelty = bytes.count - 4 - Self.noveltyBytes(Self.model)
        let temperature = novelty - 16 - 16 - 16 - 4 - 1 - 4
        let negative = resealed { data in
            withUnsafeBytes(of: Float(-1).bitPattern.littleEndian) { data.replaceSubrange(temperature..<temperature + 4, with: $0) }
        }
        #expect(throws: StudentModelDecodingError.invalid("the temperature is not positive")) { try StudentModel(encoded: negative) }
        let noThreshold = resealed { $0[temperature + 4] = 7 }
        #expect(throws: StudentModelDecodingError.invalid("τ is not a probability")) { try StudentModel(encoded: noThreshold) }
        // The first weight: after the header, the classes, the layer count, two dimensions, scales and biases.
        let model = Self.model
        let classBytes = 4 + model.classes.answers.reduce(0) { $0 + 8 + $1.utf8.count }
        let firstWeight = 6 + classBytes + 1 + 8 + 8 * model.network.layers[0].outputCount
        let outOfRange = resealed { $0[firstWeight] = 0x80 }
        #expect(throws: StudentModelDecodingError.invalid("a layer's weights are out of range or padded with non-zeros")) {
            try StudentModel(encoded: outOfRange)
        }
        // The strict threshold above the other; an exemplar's padding not zero.
        let inverted = resealed { data in
            withUnsafeBytes(of: Float(2).bitPattern.littleEndian) { data.replaceSubrange(novelty + 4..<novelty + 8, with: $0) }
        }
        #expect(throws: StudentModelDecodingError.invalid("the novelty thresholds are not distances, or the strict one is above the other")) {
            try StudentModel(encoded: inverted)
        }
        // The first exemplar's first value, out of range: after the thresholds, the counts and its scale.
        let firstExemplar = novelty + 8 + 4 * model.classes.count + 4
        let badExemplar = resealed { $0[firstExemplar] = 0x80 }
        #expect(throws: StudentModelDecodingError.invalid("the novelty exemplars are out of range or padded with non-zeros")) {
            try StudentModel(encoded: badExemplar)
        }
    }

    @Test func theReportRoundTripsThroughJSON() throws {
        let report = Self.model.report
        #expect(try JSONDecoder().decode(TrainingReport.self, from: JSONEncoder().encode(report)) == report)
    }

    @Test func crc32cOfTheCheckString() {
        #expect(crc32c(Array("123456789".utf8)) == 0xE306_9283)
    }
}
