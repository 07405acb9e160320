/// The element-wise passes between the matrix products: LayerNorm, GELU, softmax, pooling.
///
/// Written on `SIMD8<Float>` so they vectorize on the package's baseline target; `exp` and `erf` are
/// vector polynomial approximations because a libm call per element would cost more than the products.
enum Kernels {
    typealias Vector = SIMD8<Float>
    static let width = Vector.scalarCount

    @inline(__always)
    static func load(_ pointer: UnsafePointer<Float>) -> Vector {
        UnsafeRawPointer(pointer).loadUnaligned(as: Vector.self)
    }

    @inline(__always)
    static func store(_ vector: Vector, _ pointer: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(pointer).storeBytes(of: vector, as: Vector.self)
    }

    /// The first `count` (< 8) floats at `pointer`, the rest `filler`.
    @inline(__always)
    static func loadPartial(_ pointer: UnsafePointer<Float>, count: Int, filler: Float) -> Vector {
        var vector = Vector(repeating: filler)
        for lane in 0..<count { vector[lane] = pointer[lane] }
        return vector
    }

    @inline(__always)
    static func storePartial(_ vector: Vector, _ pointer: UnsafeMutablePointer<Float>, count: Int) {
        for lane in 0..<count { pointer[lane] = vector[lane] }
    }

    /// `output = a + b` over `count` floats (a multiple of 8).
    static func add(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, into output: UnsafeMutablePointer<Float>, count: Int) {
        for i in stride(from: 0, to: count, by: width) {
            store(load(a + i) + load(b + i), output + i)
        }
    }

    /// Copies `row` into each of `rows` consecutive rows of `matrix` (a bias, before a product accumulates onto it).
    static func fillRows(_ matrix: UnsafeMutablePointer<Float>, with row: UnsafePointer<Float>, rows: Int, columns: Int) {
        for r in 0..<rows {
            (matrix + r * columns).update(from: row, count: columns)
        }
    }

    /// `x = LayerNorm(x + bias) * gamma + beta` in place, over one row of `count` floats (a multiple of 8).
    static func addBiasLayerNorm(
        _ x: UnsafeMutablePointer<Float>, bias: UnsafePointer<Float>?,
        gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>, count: Int, epsilon: Float
    ) {
        var sum = Vector()
        for i in stride(from: 0, to: count, by: width) {
            var v = load(x + i)
            if let bias { v += load(bias + i) }
            store(v, x + i)
            sum += v
        }
        let mean = sum.sum() / Float(count)
        // Two passes: the variance of centered values, as PyTorch computes it, without cancellation.
        var squares = Vector()
        for i in stride(from: 0, to: count, by: width) {
            let centered = load(x + i) - mean
            squares += centered * centered
        }
        let inverseDeviation = 1 / (squares.sum() / Float(count) + epsilon).squareRoot()
        for i in stride(from: 0, to: count, by: width) {
            store((load(x + i) - mean) * inverseDeviation * load(gamma + i) + load(beta + i), x + i)
        }
    }

    /// Exact (erf) GELU in place over `count` floats (a multiple of 8): `x/2 · (1 + erf(x/√2))`.
    static func gelu(_ x: UnsafeMutablePointer<Float>, count: Int) {
        for i in stride(from: 0, to: count, by: width) {
            let v = load(x + i)
            store(0.5 * v * (1 + erf(v * 0.70710678118654752)), x + i)
        }
    }

    /// Softmax in place over each of `rows` rows of `columns` floats.
    static func softmaxRows(_ matrix: UnsafeMutablePointer<Float>, rows: Int, columns: Int) {
        let whole = columns - columns % width
        let tail = columns - whole
        for r in 0..<rows {
            let row = matrix + r * columns
            var maxima = Vector(repeating: -.infinity)
            for i in stride(from: 0, to: whole, by: width) { maxima = larger(maxima, load(row + i)) }
            if tail > 0 { maxima = larger(maxima, loadPartial(row + whole, count: tail, filler: -.infinity)) }
            var maximum = maxima[0]
            for lane in 1..<width { maximum = max(maximum, maxima[lane]) }
            var sums = Vector()
            for i in stride(from: 0, to: whole, by: width) {
                let e = exp(load(row + i) - maximum)
                store(e, row + i)
                sums += e
            }
            if tail > 0 {
                var e = exp(loadPartial(row + whole, count: tail, filler: maximum) - maximum)
                for lane in tail..<width { e[lane] = 0 }
                storePartial(e, row + whole, count: tail)
                sums += e
            }
            let scale = 1 / sums.sum()
            for i in stride(from: 0, to: whole, by: width) { store(load(row + i) * scale, row + i) }
            for i in whole..<columns { row[i] *= scale }
        }
    }

    /// The mean of `rows` rows of `columns` floats, scaled to unit length (norm floored at 1e-12, as
    /// `torch.nn.functional.normalize` does).
    static func meanPoolNormalized(_ matrix: UnsafePointer<Float>, rows: Int, columns: Int) -> [Float] {
        [Float](unsafeUninitializedCapacity: columns) { output, initialized in
            let out = output.baseAddress!
            for i in stride(from: 0, to: columns, by: width) {
                var sum = Vector()
                for r in 0..<rows { sum += load(matrix + r * columns + i) }
                store(sum / Float(rows), out + i)
            }
            var squares = Vector()
            for i in stride(from: 0, to: columns, by: width) {
                let v = load(out + i)
                squares += v * v
            }
            let scale = 1 / max(squares.sum().squareRoot(), 1e-12)
            for i in stride(from: 0, to: columns, by: width) { store(load(out + i) * scale, out + i) }
            initialized = columns
        }
    }

    // Written with masks: the standard library's `clamped`, `pointwiseMax` and `max()` are not inlined and go
    // lane by lane.
    @inline(__always)
    static func larger(_ a: Vector, _ b: Vector) -> Vector { a.replacing(with: b, where: b .> a) }

    @inline(__always)
    static func clamp(_ x: Vector, _ lower: Float, _ upper: Float) -> Vector {
        x.replacing(with: lower, where: x .< lower).replacing(with: upper, where: x .> upper)
    }

    /// e^x to about 1 ulp for x in [-87, 88] (Cephes' `expf` polynomial); clamped outside, which for the
    /// max-subtracted softmax inputs (x ≤ 0) only turns underflow into ~1e-38.
    @inline(__always)
    static func exp(_ x: Vector) -> Vector {
        let x = clamp(x, -87, 88)
        // Adding 1.5·2^23 rounds x·log2(e) to an integer n held in the low mantissa bits.
        let shifter: Float = 12_582_912
        let shifted = x * 1.44269504088896341 + shifter
        let n = shifted - shifter
        let r = x - n * 0.693359375 - n * -2.12194440e-4
        var p = r * 1.9875691500e-4 + 1.3981999507e-3
        p = p * r + 8.3334519073e-3
        p = p * r + 4.1665795894e-2
        p = p * r + 1.6666665459e-1
        p = p * r + 5.0000001201e-1
        let y = p * r * r + r + 1
        let exponent = (unsafeBitCast(shifted, to: SIMD8<Int32>.self) &- 0x4B40_0000 &+ 127) &<< 23
        return y * unsafeBitCast(exponent, to: Vector.self)
    }

    /// erf(x) to a few 1e-7 absolute: a rational approximation, odd numerator over even denominator,
    /// on [-4, 4] (beyond which erf is ±1 in single precision). Coefficients from Eigen's `erf` for float.
    @inline(__always)
    static func erf(_ x: Vector) -> Vector {
        let x = clamp(x, -4, 4)
        let x2 = x * x
        var p = x2 * -2.72614225801306e-10 + 2.77068142495902e-08
        p = p * x2 + -2.10102402082508e-06
        p = p * x2 + -5.69250639462346e-05
        p = p * x2 + -7.34990630326855e-04
        p = p * x2 + -2.95459980854025e-03
        p = p * x2 + -1.60960333262415e-02
        var q = x2 * -1.45660718464996e-05 + -2.13374055278905e-04
        q = q * x2 + -1.68282697438203e-03
        q = q * x2 + -7.37332916720468e-03
        q = q * x2 + -1.42647390514189e-02
        return x * p / q
    }
}
