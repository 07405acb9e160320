// Similarity kernels over padded Float32 vectors, for the widest instruction set the CPU has.
//
// Every stored vector and every query is zero-padded to a multiple of 16 floats (`paddedLength`),
// so the kernels have no tail loop and padding never changes a dot product.
//
// The kernels themselves are C (CPUKernels), compiled once for each instruction set and chosen at the
// first search from the CPU's features (cpuid): AVX-512 where the CPU has it, else AVX2 + FMA, else the
// baseline. Swift compiles a module for one target only (this one for the baseline, so that it runs on any
// x86-64 CPU), and on an AVX-512 CPU hnswlib built for it answered 5-15% more queries per second than the
// AVX2 build (issue 19). The call through a pointer costs no measurable time: the loops wait on the loads of
// vectors from memory (docs/benchmarks.md).

import CPUKernels

/// Floats per stored vector for a given dimension: rounded up to a multiple of 16 (64 bytes).
@inline(__always)
func paddedLength(_ dimension: Int) -> Int { (dimension + 15) & ~15 }

/// The dot-product kernels of one instruction set.
struct SimilarityKernels: @unchecked Sendable {
    let dot: dot_kernel
    let dot4: dot4_kernel

    init(_ set: kernel_set_id) {
        dot = dot_kernel_for(set)
        dot4 = dot4_kernel_for(set)
    }

    /// The process's set: this CPU's widest, unless DISTILL_KERNELS forces another (as for the encoder).
    static let host = SimilarityKernels(kernel_set_selected())
}

/// Dot product of two padded vectors of `length` floats (a multiple of 16).
@inline(__always)
func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ length: Int) -> Float {
    SimilarityKernels.host.dot(a, b, length)
}

/// Dot products of one padded query with four padded vectors. The query is loaded once per
/// chunk for all four, and the four independent streams keep more loads in flight than four
/// separate calls would — which is what matters when the vectors come from DRAM.
@inline(__always)
func dot4(
    _ q: UnsafePointer<Float>,
    _ p0: UnsafePointer<Float>, _ p1: UnsafePointer<Float>,
    _ p2: UnsafePointer<Float>, _ p3: UnsafePointer<Float>,
    _ length: Int
) -> SIMD4<Float> {
    var out = SIMD4<Float>()
    withUnsafeMutableBytes(of: &out) { bytes in
        SimilarityKernels.host.dot4(q, p0, p1, p2, p3, length, bytes.baseAddress!.assumingMemoryBound(to: Float.self))
    }
    return out
}
