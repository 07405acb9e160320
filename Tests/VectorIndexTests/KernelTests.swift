import CPUKernels
import SeededRandom
import Testing
@testable import VectorIndex

@Suite struct KernelTests {
    /// The kernels this process searches with, and those of every narrower instruction set this CPU runs (the
    /// AVX-512 ones are compiled in, and run only where the CPU has AVX-512).
    static let kernelSets: [kernel_set_id] = [KERNEL_SET_PORTABLE, KERNEL_SET_AVX2, KERNEL_SET_AVX512].filter {
        kernel_set_compiled($0) != 0 && $0.rawValue <= kernel_set_for_features(cpu_features_detect()).rawValue
    }

    @Test(arguments: [1, 15, 16, 17, 100, 384])
    func dotProductsOfEveryKernelSetMatchAScalarReference(dimension: Int) {
        let length = paddedLength(dimension)
        #expect(length % 16 == 0 && length >= dimension && length < dimension + 16)
        var generator = SplitMix64(seed: UInt64(dimension))
        let vectors: [[Float]] = (0..<5).map { _ in
            (0..<length).map { $0 < dimension ? Float(generator.next() >> 40) * 0x1p-24 - 0.5 : 0 }
        }
        func reference(_ a: [Float], _ b: [Float]) -> Float {
            Float(zip(a, b).reduce(0.0) { $0 + Double($1.0) * Double($1.1) })
        }
        vectors.withUnsafeBufferPointers { p in
            for j in 1..<5 {
                #expect(abs(dot(p[0], p[j], length) - reference(vectors[0], vectors[j])) < 1e-5)
            }
            let four = dot4(p[0], p[1], p[2], p[3], p[4], length)
            for lane in 0..<4 {
                #expect(abs(four[lane] - reference(vectors[0], vectors[lane + 1])) < 1e-5)
            }
            for set in Self.kernelSets {
                let kernels = SimilarityKernels(set)
                var out = [Float](repeating: 0, count: 4)
                kernels.dot4(p[0], p[1], p[2], p[3], p[4], length, &out)
                for j in 1..<5 {
                    let expected = reference(vectors[0], vectors[j])
                    #expect(abs(kernels.dot(p[0], p[j], length) - expected) < 1e-5, "set \(set.rawValue)")
                    #expect(abs(out[j - 1] - expected) < 1e-5, "set \(set.rawValue)")
                }
            }
        }
    }

    @Test func splitMix64ProducesTheReferenceSequence() {
        var generator = SplitMix64(seed: 0)
        #expect(generator.next() == 0xE220_A839_7B1D_CDAF)
        #expect(generator.next() == 0x6E78_9E6A_A1B9_65F4)
        #expect(generator.next() == 0x06C4_5D18_8009_454F)
    }

    @Test func crc32cMatchesTheCheckValueAndABitwiseReference() {
        let check = Array("123456789".utf8)
        #expect(check.withUnsafeBytes(CRC32C.checksum) == 0xE306_9283)

        func bitwise(_ bytes: ArraySlice<UInt8>) -> UInt32 {
            var crc: UInt32 = ~0
            for byte in bytes {
                crc ^= UInt32(byte)
                for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1 }
            }
            return ~crc
        }
        var generator = SplitMix64(seed: 7)
        let bytes = (0..<1100).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
        for (start, end) in [(0, 0), (3, 4), (1, 9), (5, 22), (7, 1100)] {
            let slice = bytes[start..<end]
            #expect(slice.withUnsafeBytes(CRC32C.checksum) == bitwise(slice))
        }
    }
}

extension Array where Element == [Float] {
    /// Pointers to every element's storage, valid inside `body`.
    func withUnsafeBufferPointers<R>(_ body: ([UnsafePointer<Float>]) -> R) -> R {
        func go(_ index: Int, _ pointers: [UnsafePointer<Float>]) -> R {
            if index == count { return body(pointers) }
            return self[index].withUnsafeBufferPointer { go(index + 1, pointers + [$0.baseAddress!]) }
        }
        return go(0, [])
    }
}
