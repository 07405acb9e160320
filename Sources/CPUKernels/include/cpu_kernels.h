// Numeric kernels compiled for several instruction sets in one binary, and the CPU feature detection
// that picks among them at run time (cpuid and xgetbv, never the CPU's model number).
//
// Each kernel set is the same C source compiled for a different target (see kernel_set.h):
//   - portable: the build's baseline (SSE2 on x86-64), also the only set on other architectures;
//   - avx2:     AVX2 + FMA (Intel Haswell, 2013; AMD Zen, 2017);
//   - avx512:   AVX-512 F/BW/DQ/VL (Intel Skylake-SP, 2017; AMD Zen 4, 2022).
#ifndef CPU_KERNELS_H
#define CPU_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// ---- CPU features ----------------------------------------------------------------------------

// One bit per feature; an instruction set counts only when the OS also saves its registers (XCR0).
enum {
    CPU_FEATURE_AVX = 1u << 0,
    CPU_FEATURE_AVX2 = 1u << 1,
    CPU_FEATURE_FMA = 1u << 2,
    CPU_FEATURE_AVX512F = 1u << 3,
    CPU_FEATURE_AVX512DQ = 1u << 4,
    CPU_FEATURE_AVX512BW = 1u << 5,
    CPU_FEATURE_AVX512VL = 1u << 6,
    CPU_FEATURE_AVX512VNNI = 1u << 7,
    CPU_FEATURE_AVXVNNI = 1u << 8,
    CPU_FEATURE_AVX512BF16 = 1u << 9,
    // The rest of x86-64-v3, reported in the features' names.
    CPU_FEATURE_BMI1 = 1u << 10,
    CPU_FEATURE_BMI2 = 1u << 11,
    CPU_FEATURE_F16C = 1u << 12,
    CPU_FEATURE_MOVBE = 1u << 13,
    CPU_FEATURE_LZCNT = 1u << 14,
};

// This CPU's features (0 on other architectures than x86-64).
uint32_t cpu_features_detect(void);

// The CPU's brand string ("AMD EPYC 7B13 64-Core Processor"), at most `capacity - 1` bytes; "" if unknown.
void cpu_brand(char *buffer, size_t capacity);

// ---- Kernel sets -----------------------------------------------------------------------------

typedef enum { KERNEL_SET_PORTABLE = 0, KERNEL_SET_AVX2 = 1, KERNEL_SET_AVX512 = 2 } kernel_set_id;

// The best set these features can run.
kernel_set_id kernel_set_for_features(uint32_t features);

// The set this process uses: the one the environment variable DISTILL_KERNELS names ("portable", "avx2",
// "avx512"; for tests and comparisons) if this CPU runs it, else the CPU's best. Programs that honour the
// variable check it first with kernel_set_named, to refuse a bad value rather than ignore it.
kernel_set_id kernel_set_selected(void);

// The set called `name` ("portable", "avx2", "avx512"), or -1.
int kernel_set_named(const char *name);

// 1 if this binary contains the set (the x86 sets exist only in x86-64 builds).
int kernel_set_compiled(kernel_set_id set);

// Columns per panel of a packed weight matrix for this set (the width of its matrix kernel).
int kernel_set_panel_width(kernel_set_id set);

// Floats needed to pack an (n × k) weight matrix for this set.
size_t packed_weight_count(kernel_set_id set, int n, int k);

// Packs `weight`, row-major (n × k) as PyTorch stores a Linear layer's weight, into `packed`
// (packed_weight_count floats; 64-byte aligned is fastest, as each panel row is then one cache line): panels of `panel_width` columns of Wᵀ, k rows each,
// zero beyond column n. Done once at load, so that no product re-packs the weights.
void pack_weight(kernel_set_id set, const float *weight, int n, int k, float *packed);

// A fixed team of threads that share products column-wise. Helpers spin briefly, then sleep.
typedef struct thread_team thread_team;
thread_team *thread_team_create(int threads);
void thread_team_destroy(thread_team *team);
int thread_team_size(const thread_team *team);

// C (m × n, row stride ldc) += A (m × k, row stride lda) · Wᵀ, with W packed by pack_weight for the
// same set. The team (may be NULL: the calling thread alone) splits the panels of W.
void packed_gemm(kernel_set_id set, thread_team *team, int m, int n, int k, const float *a, int lda,
                 const float *packed, float *c, int ldc);

// Attention scores of one head of one text: S (n × n, stride n) = scale · Q Kᵀ, where Q and K are
// (n × d) with row stride `stride`. `transposed` is scratch for d × n floats.
void attention_scores(kernel_set_id set, int n, int d, const float *q, const float *k, int stride,
                      float scale, float *scores, float *transposed);

// Context of one head: O (n × d, row stride out_stride) = P V, P (n × n, stride n), V (n × d, stride `stride`).
void attention_context(kernel_set_id set, int n, int d, const float *p, const float *v, int stride,
                       float *out, int out_stride);

// ---- Vector similarity (VectorIndex) ---------------------------------------------------------

// Dot product of two vectors of `length` floats, a multiple of 16.
typedef float (*dot_kernel)(const float *a, const float *b, long length);
// Dot products of q with four vectors of `length` floats (a multiple of 16), into out[0..3].
typedef void (*dot4_kernel)(const float *q, const float *p0, const float *p1, const float *p2,
                            const float *p3, long length, float *out);

dot_kernel dot_kernel_for(kernel_set_id set);
dot4_kernel dot4_kernel_for(kernel_set_id set);

#ifdef __cplusplus
}
#endif
#endif
