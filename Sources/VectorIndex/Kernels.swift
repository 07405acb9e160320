// Similarity kernels over padded Float32 vectors.
//
// Every stored vector and every query is zero-padded to a multiple of 16 floats (`paddedLength`),
// so the kernels have no tail loop and padding never changes a dot product.
//
// What swiftc 6.3.1 -O emits on x86-64 (checked with -emit-assembly and objdump -d):
//  - default target (the x86-64 SSE2 baseline, which is what `swift build` produces unless told
//    otherwise): each SIMD16 operation becomes four xmm `mulps` / `addps` (SIMD8: two); no ymm,
//    no FMA.
//  - `-Xswiftc -target-cpu -Xswiftc haswell` (AVX2+FMA): ymm `vmulps` / `vaddps`;
//    `-target-cpu znver4`/`znver5`/`native` on an AVX-512 machine: zmm for SIMD16, ymm for SIMD8.
// Swift never contracts `a * b + c` into a fused multiply-add, and `addingProduct` must round
// once, so on the SSE2 baseline it becomes a call to libm `fmaf` per lane: 75× slower (1.9 µs
// against 25 ns per 384-d dot product, measured on the Zen 5 of docs/benchmarks.md). The kernels
// therefore multiply and add separately. Where FMA exists that costs nothing, since these loops
// are load-bound: 18.1 ns (vmulps + vaddps) against 18.2 ns (vfmadd231ps) with -target-cpu haswell.

/// Floats per stored vector for a given dimension: rounded up to a multiple of 16 (64 bytes).
@inline(__always)
func paddedLength(_ dimension: Int) -> Int { (dimension + 15) & ~15 }

/// Dot product of two padded vectors of `length` floats (a multiple of 16).
@inline(__always)
func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ length: Int) -> Float {
    let a = UnsafeRawPointer(a), b = UnsafeRawPointer(b)
    // Two independent accumulators hide the add latency; 2 × SIMD16 fills 8 of the 16 xmm
    // registers on the baseline target, 4 ymm or 2 zmm with wider vectors.
    var s0 = SIMD16<Float>(), s1 = SIMD16<Float>()
    var offset = 0
    let bytes = length &* 4
    while offset &+ 128 <= bytes {
        s0 += a.loadUnaligned(fromByteOffset: offset, as: SIMD16<Float>.self)
            * b.loadUnaligned(fromByteOffset: offset, as: SIMD16<Float>.self)
        s1 += a.loadUnaligned(fromByteOffset: offset &+ 64, as: SIMD16<Float>.self)
            * b.loadUnaligned(fromByteOffset: offset &+ 64, as: SIMD16<Float>.self)
        offset &+= 128
    }
    if offset < bytes {
        s0 += a.loadUnaligned(fromByteOffset: offset, as: SIMD16<Float>.self)
            * b.loadUnaligned(fromByteOffset: offset, as: SIMD16<Float>.self)
    }
    return horizontalSum(s0 + s1)
}

/// Dot products of one padded query with four padded vectors. The query is loaded once per
/// chunk for all four, and the four independent streams keep more loads in flight than four
/// separate calls would — which is what matters when the vectors come from DRAM.
///
/// SIMD8 accumulators: four SIMD16 ones and the query chunk need 20 xmm registers on the SSE2
/// baseline, which has 16, and the loop spilled to the stack. With SIMD8, graph searches are 7.5%
/// faster there and 2% with AVX2 (where SIMD8 is one ymm register); 7.5% slower with AVX-512,
/// whose zmm registers it leaves half used (100k × 384, efSearch 64, on the machine of
/// docs/benchmarks.md).
@inline(__always)
func dot4(
    _ q: UnsafePointer<Float>,
    _ p0: UnsafePointer<Float>, _ p1: UnsafePointer<Float>,
    _ p2: UnsafePointer<Float>, _ p3: UnsafePointer<Float>,
    _ length: Int
) -> SIMD4<Float> {
    let q = UnsafeRawPointer(q)
    let r0 = UnsafeRawPointer(p0), r1 = UnsafeRawPointer(p1)
    let r2 = UnsafeRawPointer(p2), r3 = UnsafeRawPointer(p3)
    var s0 = SIMD8<Float>(), s1 = SIMD8<Float>(), s2 = SIMD8<Float>(), s3 = SIMD8<Float>()
    var offset = 0
    let bytes = length &* 4
    while offset < bytes {
        let x = q.loadUnaligned(fromByteOffset: offset, as: SIMD8<Float>.self)
        s0 += x * r0.loadUnaligned(fromByteOffset: offset, as: SIMD8<Float>.self)
        s1 += x * r1.loadUnaligned(fromByteOffset: offset, as: SIMD8<Float>.self)
        s2 += x * r2.loadUnaligned(fromByteOffset: offset, as: SIMD8<Float>.self)
        s3 += x * r3.loadUnaligned(fromByteOffset: offset, as: SIMD8<Float>.self)
        offset &+= 32
    }
    return SIMD4(horizontalSum(s0), horizontalSum(s1), horizontalSum(s2), horizontalSum(s3))
}

/// Sums the lanes by halving, which vectorizes (`SIMD.sum()` emits a scalar add per lane).
@inline(__always)
func horizontalSum(_ v: SIMD16<Float>) -> Float {
    horizontalSum(v.lowHalf + v.highHalf)
}

@inline(__always)
func horizontalSum(_ v: SIMD8<Float>) -> Float {
    let v4 = v.lowHalf + v.highHalf
    let v2 = v4.lowHalf + v4.highHalf
    return v2.x + v2.y
}
