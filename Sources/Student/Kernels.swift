// Single-threaded SIMD kernels. The trainer must stay on one core, away from the encoder's thread team; at these sizes (a batch of 64 against 384 × 256 weights) plain
// Swift over raw pointers is fast enough. Every loop has a fixed order, so results are bit-reproducible.

@inline(__always) func load8(_ pointer: UnsafePointer<Float>) -> SIMD8<Float> {
    UnsafeRawPointer(pointer).loadUnaligned(as: SIMD8<Float>.self)
}

@inline(__always) func store8(_ value: SIMD8<Float>, _ pointer: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(pointer).storeBytes(of: value, as: SIMD8<Float>.self)
}

/// C[m×n] += A[m×k] · B[k×n]. Element (i, p) of A is `a[i * aRowStride + p * aColumnStride]`, so Aᵀ is the same
/// call with the strides swapped; B and C are row-major and n wide.
///
/// Tiles of 4 rows × 8 columns keep C in 8 SSE registers (4 AVX ones) while one row of B streams past: each
/// loaded B vector serves four rows.
func multiplyAccumulate(
    m: Int, n: Int, k: Int, a: UnsafePointer<Float>, aRowStride: Int, aColumnStride: Int,
    b: UnsafePointer<Float>, c: UnsafeMutablePointer<Float>
) {
    var i = 0
    while i + 4 <= m {
        let a0 = a + i * aRowStride, a1 = a0 + aRowStride, a2 = a1 + aRowStride, a3 = a2 + aRowStride
        let c0 = c + i * n, c1 = c0 + n, c2 = c1 + n, c3 = c2 + n
        var j = 0
        while j + 8 <= n {
            var s0 = load8(c0 + j), s1 = load8(c1 + j), s2 = load8(c2 + j), s3 = load8(c3 + j)
            var row = b + j
            var p = 0
            while p < k {
                let bv = load8(row)
                let offset = p * aColumnStride
                s0 += bv * a0[offset]
                s1 += bv * a1[offset]
                s2 += bv * a2[offset]
                s3 += bv * a3[offset]
                row += n
                p += 1
            }
            store8(s0, c0 + j)
            store8(s1, c1 + j)
            store8(s2, c2 + j)
            store8(s3, c3 + j)
            j += 8
        }
        if j < n {
            multiplyAccumulateScalar(
                rows: i..<i + 4, columns: j..<n, n: n, k: k, a: a, aRowStride: aRowStride,
                aColumnStride: aColumnStride, b: b, c: c)
        }
        i += 4
    }
    while i < m {
        let ai = a + i * aRowStride, ci = c + i * n
        var j = 0
        while j + 8 <= n {
            var s = load8(ci + j)
            for p in 0..<k { s += load8(b + p * n + j) * ai[p * aColumnStride] }
            store8(s, ci + j)
            j += 8
        }
        if j < n {
            multiplyAccumulateScalar(
                rows: i..<i + 1, columns: j..<n, n: n, k: k, a: a, aRowStride: aRowStride,
                aColumnStride: aColumnStride, b: b, c: c)
        }
        i += 1
    }
}

/// The columns of `multiplyAccumulate` left over after the 8-wide tiles.
private func multiplyAccumulateScalar(
    rows: Range<Int>, columns: Range<Int>, n: Int, k: Int, a: UnsafePointer<Float>, aRowStride: Int,
    aColumnStride: Int, b: UnsafePointer<Float>, c: UnsafeMutablePointer<Float>
) {
    for i in rows {
        for j in columns {
            var s = c[i * n + j]
            for p in 0..<k { s += a[i * aRowStride + p * aColumnStride] * b[p * n + j] }
            c[i * n + j] = s
        }
    }
}

/// C[m×n] = A[m×k] · Bᵀ with B row-major n×k: every element a dot product of two contiguous rows.
func multiplyTransposed(
    m: Int, n: Int, k: Int, a: UnsafePointer<Float>, b: UnsafePointer<Float>, c: UnsafeMutablePointer<Float>
) {
    for i in 0..<m {
        for j in 0..<n { c[i * n + j] = dot(a + i * k, b + j * k, count: k) }
    }
}

@inline(__always) func dot(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, count: Int) -> Float {
    var sum = SIMD8<Float>()
    var p = 0
    while p + 8 <= count {
        sum += load8(x + p) * load8(y + p)
        p += 8
    }
    var total = sum.sum()
    while p < count {
        total += x[p] * y[p]
        p += 1
    }
    return total
}

/// Σ x[p]·w[p] of int8 values, summed in Int32 (which 65,536 products within ±127² cannot overflow). The
/// activations `x` come in 16-bit lanes: SSE2 has no 8-bit multiply, and with one operand already widened LLVM
/// vectorizes this loop into `pmaddwd` multiply-adds — 1.3× faster than widening both (the standard library's
/// SIMD integer conversions would be calls).
@inline(__always) func dot(_ x: UnsafePointer<Int16>, _ w: UnsafePointer<Int8>, count: Int) -> Int32 {
    var sum: Int32 = 0
    for p in 0..<count { sum &+= Int32(x[p]) &* Int32(w[p]) }
    return sum
}
