import CPUKernels
import SeededRandom
import Foundation
import Testing

@testable import Embedding

/// The choice of kernels for CPUs other than this one, by injecting their features: the AVX-512 kernels are
/// compiled into every x86-64 build, but only a CPU that has AVX-512 can run them.
@Suite struct KernelChoiceTests {
    static let haswell: CPUFeatures = [.avx, .avx2, .fma, .bmi1, .bmi2, .f16c, .movbe, .lzcnt]
    static let skylakeServer: CPUFeatures = haswell.union([.avx512f, .avx512dq, .avx512bw, .avx512vl])
    static let sapphireRapids: CPUFeatures = skylakeServer.union([.avx512vnni, .avx512bf16, .avxvnni])

    @Test func choosesTheWidestSetTheFeaturesAllow() throws {
        try #require(KernelSet.avx2.isCompiled, "an x86-64 build")
        #expect(KernelChoice(features: Self.sapphireRapids, cpuModel: "Intel Xeon").kernelSet == .avx512)
        #expect(KernelChoice(features: Self.skylakeServer, cpuModel: "Intel Xeon").kernelSet == .avx512)
        #expect(KernelChoice(features: Self.haswell, cpuModel: "AMD EPYC").kernelSet == .avx2)
        // AVX-512 without one of its four parts (or without FMA) is not enough for the AVX-512 set.
        #expect(KernelSet(features: Self.skylakeServer.subtracting(.avx512vl)) == .avx2)
        // AVX without AVX2 or FMA (Sandy Bridge) runs only the portable set.
        #expect(KernelSet(features: [.avx]) == .portable)
        #expect(KernelSet(features: [.avx, .avx2]) == .portable)
        #expect(KernelSet(features: []) == .portable)
    }

    @Test func aSetRunsOnlyWhereNoWiderThanTheBest() throws {
        try #require(KernelSet.avx2.isCompiled, "an x86-64 build")
        #expect(KernelSet.allCases.filter { $0.runs(on: Self.haswell) } == [.avx2, .portable])
        #expect(KernelSet.allCases.filter { $0.runs(on: Self.skylakeServer) } == [.avx512, .avx2, .portable])
        #expect(KernelSet.allCases.filter { $0.runs(on: []) } == [.portable])
    }

    @Test func hostChoiceIsOneThisCPURuns() {
        let choice = KernelChoice.host
        #expect(choice.kernelSet.runs(on: choice.features))
        #expect(!choice.cpuModel.isEmpty)
        #expect(choice.description.hasPrefix("\(choice.kernelSet) kernels"))
        #expect(choice.description.contains(" on \(choice.cpuModel) (cpu features: "))
    }

    /// DISTILL_KERNELS may pick any set the CPU runs, narrower than its best included; anything else is refused
    /// with the reason, rather than ignored.
    @Test func overrideMustNameASetTheCPURuns() throws {
        try #require(KernelSet.avx2.isCompiled, "an x86-64 build")
        for value in ["portable", "avx2"] {
            #expect(throws: Never.self) { try KernelChoice.checkOverride(["DISTILL_KERNELS": value], features: Self.haswell) }
        }
        #expect(throws: Never.self) { try KernelChoice.checkOverride([:], features: []) }
        #expect(throws: KernelOverrideError.unsupported(.avx512, Self.haswell)) {
            try KernelChoice.checkOverride(["DISTILL_KERNELS": "avx512"], features: Self.haswell)
        }
        #expect(throws: KernelOverrideError.unknownSet("AVX2")) {
            try KernelChoice.checkOverride(["DISTILL_KERNELS": "AVX2"], features: Self.haswell)
        }
        let forced = KernelChoice(features: Self.haswell, cpuModel: "AMD EPYC", forcing: .portable)
        #expect(forced.kernelSet == .portable && forced.forced)
        #expect(forced.description.hasPrefix("portable kernels (forced by DISTILL_KERNELS) on AMD EPYC"))
        #expect(!KernelChoice(features: Self.haswell, cpuModel: "AMD EPYC", forcing: .avx2).forced)
    }

    @Test func featureNames() {
        #expect(CPUFeatures([.avx2, .fma, .avx512vnni]).description == "avx2 fma avx512vnni")
        #expect(CPUFeatures().description == "none")
    }
}

/// The packed products of every set this CPU runs against a plain double-precision product, on sizes that are
/// not multiples of any tile or panel, with one thread, two, and more threads than panels.
@Suite struct PackedProductTests {
    @Test(arguments: KernelSet.allCases.filter { $0.runs(on: .host) })
    func packedProductEqualsThePlainOne(kernelSet: KernelSet) {
        var random = SplitMix64(seed: 7)
        for (m, n, k) in [(1, 1, 1), (13, 40, 33), (7, 100, 500), (30, 70, 800), (100, 33, 9)] {
            let a = (0..<m * k).map { _ in Float.random(in: -1...1, using: &random) }
            let w = (0..<n * k).map { _ in Float.random(in: -1...1, using: &random) }
            let start = (0..<m * n).map { _ in Float.random(in: -1...1, using: &random) }
            var expected = [Double](repeating: 0, count: m * n)
            for i in 0..<m {
                for j in 0..<n {
                    expected[i * n + j] = Double(start[i * n + j])
                        + (0..<k).reduce(0) { $0 + Double(a[i * k + $1]) * Double(w[j * k + $1]) }
                }
            }
            let count = packed_weight_count(kernelSet.id, Int32(n), Int32(k))
            let packed = UnsafeMutablePointer<Float>.allocate(capacity: count)
            defer { packed.deallocate() }
            pack_weight(kernelSet.id, w, Int32(n), Int32(k), packed)
            for threads in [1, 2, 5] {
                let team = thread_team_create(Int32(threads))
                defer { thread_team_destroy(team) }
                var c = start
                packed_gemm(kernelSet.id, team, Int32(m), Int32(n), Int32(k), a, Int32(k), packed, &c, Int32(n))
                let error = zip(c, expected).map { abs(Double($0) - $1) }.max()!
                #expect(error < 1e-4, "\(kernelSet) \(m)×\(n)×\(k), \(threads) threads: max error \(error)")
            }
        }
    }

    @Test(arguments: KernelSet.allCases.filter { $0.runs(on: .host) })
    func attentionEqualsThePlainOne(kernelSet: KernelSet) {
        var random = SplitMix64(seed: 8)
        let (n, d, stride) = (11, 8, 24)
        let q = (0..<n * stride).map { _ in Float.random(in: -1...1, using: &random) }
        let k = (0..<n * stride).map { _ in Float.random(in: -1...1, using: &random) }
        var scores = [Float](repeating: 0, count: n * n)
        var transposed = [Float](repeating: 0, count: d * n)
        attention_scores(kernelSet.id, Int32(n), Int32(d), q, k, Int32(stride), 0.5, &scores, &transposed)
        for i in 0..<n {
            for j in 0..<n {
                let plain = 0.5 * (0..<d).reduce(0.0) { $0 + Double(q[i * stride + $1]) * Double(k[j * stride + $1]) }
                #expect(abs(Double(scores[i * n + j]) - plain) < 1e-5)
            }
        }
        var out = [Float](repeating: .nan, count: n * stride)
        attention_context(kernelSet.id, Int32(n), Int32(d), scores, k, Int32(stride), &out, Int32(stride))
        for i in 0..<n {
            for c in 0..<d {
                let plain = (0..<n).reduce(0.0) { $0 + Double(scores[i * n + $1]) * Double(k[$1 * stride + c]) }
                #expect(abs(Double(out[i * stride + c]) - plain) < 1e-4)
            }
        }
    }
}
