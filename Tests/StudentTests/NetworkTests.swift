import SeededRandom
import Testing

@testable import Student

@Suite struct KernelTests {
    static func values(_ count: Int, seed: UInt64) -> [Float] {
        var generator = SplitMix64(seed: seed)
        return (0..<count).map { _ in Float(generator.nextGaussian()) }
    }

    @Test(arguments: [(1, 1, 1), (4, 8, 3), (5, 13, 7), (9, 24, 16), (7, 3, 40)])
    func multiplyAccumulateMatchesTheDefinition(m: Int, n: Int, k: Int) {
        let a = Self.values(m * k, seed: 1), b = Self.values(k * n, seed: 2), c = Self.values(m * n, seed: 3)
        // A as given (row-major m×k) and as the transpose of a k×m matrix.
        let aTransposed = (0..<k * m).map { a[($0 % m) * k + $0 / m] }
        for (matrix, rowStride, columnStride) in [(a, k, 1), (aTransposed, 1, m)] {
            var result = c
            matrix.withUnsafeBufferPointer { a in
                b.withUnsafeBufferPointer { b in
                    result.withUnsafeMutableBufferPointer { c in
                        multiplyAccumulate(
                            m: m, n: n, k: k, a: a.baseAddress!, aRowStride: rowStride, aColumnStride: columnStride,
                            b: b.baseAddress!, c: c.baseAddress!)
                    }
                }
            }
            for i in 0..<m {
                for j in 0..<n {
                    let expected = c[i * n + j] + (0..<k).reduce(0) { $0 + a[i * k + $1] * b[$1 * n + j] }
                    #expect(abs(result[i * n + j] - expected) < 1e-4)
                }
            }
        }
    }

    @Test(arguments: [(1, 1, 1), (3, 5, 8), (4, 6, 21)])
    func multiplyTransposedMatchesTheDefinition(m: Int, n: Int, k: Int) {
        let a = Self.values(m * k, seed: 4), b = Self.values(n * k, seed: 5)
        var result = [Float](repeating: .nan, count: m * n)
        result.withUnsafeMutableBufferPointer { c in
            multiplyTransposed(m: m, n: n, k: k, a: a, b: b, c: c.baseAddress!)
        }
        for i in 0..<m {
            for j in 0..<n {
                #expect(abs(result[i * n + j] - (0..<k).reduce(0) { $0 + a[i * k + $1] * b[j * k + $1] }) < 1e-4)
            }
        }
    }

    @Test func int8DotProductsSumInInt32() {
        let x = [Int16](repeating: 127, count: 32) + (0..<32).map { Int16($0 - 16) }
        let w = [Int8](repeating: -127, count: 32) + (0..<32).map { Int8(3 * $0 - 50) }
        let expected = zip(x, w).reduce(Int32(0)) { $0 + Int32($1.0) * Int32($1.1) }
        #expect(dot(x, w, count: 64) == expected)
    }

    @Test func inputsAreQuantizedByTheirLargestMagnitude() {
        var q: [Int16] = []
        let scale = QuantizedNetwork.quantize([0.5, -1, 0.25, 0.003, -0.5039], into: &q, stride: 16)
        #expect(scale == Float(1) / 127)
        // 63.5 and −63.99… round to the nearest integer, ties to even.
        #expect(q == [64, -127, 32, 0, -64] + [Int16](repeating: 0, count: 11))
        #expect(QuantizedNetwork.quantize([0, 0], into: &q, stride: 16) == 0 && q.allSatisfy { $0 == 0 })
        #expect(QuantizedNetwork.quantize([1, .nan], into: &q, stride: 16).isNaN)
        #expect(QuantizedNetwork.quantize([1, -.infinity], into: &q, stride: 16).isNaN)
    }
}

@Suite struct NetworkTests {
    static func network(widths: [Int], seed: UInt64) -> FloatNetwork {
        var generator = SplitMix64(seed: seed)
        let layers = zip(widths, widths.dropFirst()).map { inputs, outputs in
            FloatNetwork.Layer(
                inputCount: inputs, outputCount: outputs,
                weights: (0..<inputs * outputs).map { _ in Float(generator.nextGaussian()) / Float(inputs).squareRoot() },
                biases: (0..<outputs).map { _ in Float(generator.nextGaussian()) * 0.1 })
        }
        return FloatNetwork(layers: layers)
    }

    @Test func floatLogitsAreTheLayersComposed() {
        let network = Self.network(widths: [5, 3, 2], seed: 1)
        let input: [Float] = [0.5, -1, 2, 0, 0.25]
        var x = input
        for (number, layer) in network.layers.enumerated() {
            x = (0..<layer.outputCount).map { o in
                let z = layer.biases[o] + (0..<layer.inputCount).reduce(0) { $0 + x[$1] * layer.weights[$1 * layer.outputCount + o] }
                return number == network.layers.count - 1 ? z : max(z, 0)
            }
        }
        for (a, b) in zip(network.logits(input), x) { #expect(abs(a - b) < 1e-5) }
    }

    @Test func weightsAreQuantizedPerOutputChannelAndSymmetrically() {
        let layer = FloatNetwork.Layer(
            inputCount: 3, outputCount: 3, weights: [1, -0.001, 0, -2, 0.0021, 0, 0.5, 0.004, 0], biases: [0.1, 0.2, 0.3])
        let quantized = QuantizedNetwork.Layer(layer)
        #expect(quantized.stride == 16)
        #expect(quantized.scales == [2 / 127, 0.004 / 127, 0])
        #expect(Array(quantized.weights[0..<3]) == [64, -127, 32])
        #expect(Array(quantized.weights[16..<19]) == [-32, 67, 127])
        #expect(quantized.weights[32..<48].allSatisfy { $0 == 0 } && quantized.weights[3..<16].allSatisfy { $0 == 0 })
        #expect(quantized.biases == layer.biases)
        // Every weight within half a step of its float value.
        for o in 0..<3 {
            for i in 0..<3 {
                let error = abs(Float(quantized.weights[o * 16 + i]) * quantized.scales[o] - layer.weights[i * 3 + o])
                #expect(error <= quantized.scales[o] / 2 + 1e-7)
            }
        }
    }

    @Test func int8LogitsFollowTheFloatNetwork() {
        let network = Self.network(widths: [40, 24, 7], seed: 2)
        let quantized = QuantizedNetwork(network)
        var generator = SplitMix64(seed: 3)
        var agreeing = 0
        for _ in 0..<200 {
            let input = (0..<40).map { _ in Float(generator.nextGaussian()) }
            let exact = network.logits(input), approximate = quantized.logits(input)
            let spread = exact.max()! - exact.min()!
            for (a, b) in zip(exact, approximate) { #expect(abs(a - b) < 0.05 * spread) }
            agreeing += exact.indices.max { exact[$0] < exact[$1] } == approximate.indices.max { approximate[$0] < approximate[$1] } ? 1 : 0
        }
        #expect(agreeing >= 190)
    }
}
