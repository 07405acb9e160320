import Foundation
import Testing

@testable import Embedding

@Suite struct KernelTests {
    /// Applies a vector function to each value, eight at a time.
    func map(_ values: [Float], _ function: (Kernels.Vector) -> Kernels.Vector) -> [Float] {
        stride(from: 0, to: values.count, by: 8).flatMap { start in
            var v = Kernels.Vector()
            for lane in 0..<8 where start + lane < values.count { v[lane] = values[start + lane] }
            let r = function(v)
            return (0..<min(8, values.count - start)).map { r[$0] }
        }
    }

    @Test func erfIsAccurateEverywhere() {
        let xs = stride(from: -6.0, through: 6.0, by: 1.0 / 1024).map { Float($0) }
        let error = zip(xs, map(xs, Kernels.erf)).map { abs(Double($1) - Foundation.erf(Double($0))) }.max()!
        #expect(error < 5e-7)
    }

    @Test func expIsAccurateOverSoftmaxInputs() {
        let xs = stride(from: -87.0, through: 0, by: 1.0 / 256).map { Float($0) }
        let error = zip(xs, map(xs, Kernels.exp)).map { x, y in abs(Double(y) / Foundation.exp(Double(x)) - 1) }.max()!
        #expect(error < 3e-7)
    }

    @Test func geluIsTheExactErfForm() {
        var xs = stride(from: -8.0, to: 8.0, by: 1.0 / 64).map { Float($0) }  // a multiple of 8 values
        let expected = xs.map { x in 0.5 * Double(x) * (1 + Foundation.erf(Double(x) / 2.0.squareRoot())) }
        xs.withUnsafeMutableBufferPointer { Kernels.gelu($0.baseAddress!, count: $0.count) }
        #expect(zip(xs, expected).allSatisfy { abs(Double($0) - $1) < 2e-6 })
    }

    @Test(arguments: 1...19)
    func softmaxOfEveryRowLength(columns: Int) {
        let rows = 3
        var matrix = (0..<rows * columns).map { Float(($0 * 37) % 23) * 0.7 - 8 }
        let original = matrix
        matrix.withUnsafeMutableBufferPointer { Kernels.softmaxRows($0.baseAddress!, rows: rows, columns: columns) }
        for r in 0..<rows {
            let row = original[(r * columns)..<((r + 1) * columns)].map(Double.init)
            let top = row.max()!
            let total = row.reduce(0) { $0 + Foundation.exp($1 - top) }
            for (c, x) in row.enumerated() {
                #expect(abs(Double(matrix[r * columns + c]) - Foundation.exp(x - top) / total) < 1e-6)
            }
        }
    }

    @Test func layerNormAddsTheBiasFirst() {
        let count = 24
        var x = (0..<count).map { Float($0 % 7) - 2.5 }
        let bias = (0..<count).map { Float($0) * 0.25 }
        let gamma = (0..<count).map { 1 + Float($0) * 0.01 }
        let beta = (0..<count).map { Float($0) * -0.1 }
        let input = zip(x, bias).map { Double($0) + Double($1) }
        let mean = input.reduce(0, +) / Double(count)
        let variance = input.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(count)
        let expected = input.indices.map { (input[$0] - mean) / (variance + 1e-12).squareRoot() * Double(gamma[$0]) + Double(beta[$0]) }
        x.withUnsafeMutableBufferPointer { x in
            Kernels.addBiasLayerNorm(x.baseAddress!, bias: bias, gamma: gamma, beta: beta, count: count, epsilon: 1e-12)
        }
        #expect(zip(x, expected).allSatisfy { abs(Double($0) - $1) < 1e-5 })
    }

    @Test func meanPoolingIsNormalized() {
        let rows: [Float] = [6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 8]  // two rows of eight
        let pooled = Kernels.meanPoolNormalized(rows, rows: 2, columns: 8)
        #expect(pooled == [0.6, 0, 0, 0, 0, 0, 0, 0.8])
        let zero = Kernels.meanPoolNormalized([Float](repeating: 0, count: 8), rows: 1, columns: 8)
        #expect(zero == [Float](repeating: 0, count: 8))
    }
}
