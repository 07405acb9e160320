// One kernel set: included by kernels.c once per instruction set, inside a region that compiles its
// functions for that set. The includer defines KS(name) (adds the set's suffix), LANES (floats per
// vector register) and MR (rows of the matrix kernel's tile: as many as keep its 2·MR accumulators
// and operands in registers).
//
// The same source for every set: the portable build runs it here (and in the tests), so the wider
// sets differ only in vector width and tile height, never in logic.

typedef float KS(vec) __attribute__((ext_vector_type(LANES)));
#define VEC KS(vec)
#define NR (2 * LANES)
// A tile of A (MC rows × KC depth) stays in L2 while every panel of the weight passes over it; a
// KC-deep slice of one panel (KC · NR floats: 24 KiB for AVX2) stays in L1 while the tiles pass.
#define KC 384
#define MC (16 * MR)

static inline VEC KS(load)(const float *p) {
    VEC v;
    __builtin_memcpy(&v, p, sizeof v);
    return v;
}

static inline void KS(store)(float *p, VEC v) { __builtin_memcpy(p, &v, sizeof v); }

static inline float KS(sum)(VEC v) {
    float lanes[LANES];
    __builtin_memcpy(lanes, &v, sizeof v);
    for (int width = LANES / 2; width > 0; width /= 2) {
        for (int i = 0; i < width; i++) lanes[i] += lanes[i + width];
    }
    return lanes[0];
}

static void KS(pack_weight)(const float *w, int n, int k, float *packed) {
    int panels = (n + NR - 1) / NR;
    for (int p = 0; p < panels; p++) {
        for (int kk = 0; kk < k; kk++) {
            float *to = packed + ((size_t)p * k + kk) * NR;
            for (int j = 0; j < NR; j++) {
                int column = p * NR + j;
                to[j] = column < n ? w[(size_t)column * k + kk] : 0;
            }
        }
    }
}

// C tile (rows × cols, at most height × NR) += the first `height` rows of a packed A tile (kc × MR) · packed weight
// slice (kc × NR). `height` is a constant at every call: inlined, each height is a kernel of its own.
static inline __attribute__((always_inline)) void KS(tile_of)(int height, int kc, const float *restrict a,
                                                             const float *restrict b, float *c, int ldc, int rows,
                                                             int cols) {
    VEC low[MR], high[MR];
    for (int r = 0; r < height; r++) low[r] = high[r] = 0;
    for (int kk = 0; kk < kc; kk++) {
        VEC b0 = KS(load)(b);
        VEC b1 = KS(load)(b + LANES);
        for (int r = 0; r < height; r++) {
            VEC av = a[r];
            low[r] += av * b0;
            high[r] += av * b1;
        }
        a += MR;
        b += NR;
    }
    if (cols == NR) {
        for (int r = 0; r < rows; r++) {
            float *row = c + (size_t)r * ldc;
            KS(store)(row, KS(load)(row) + low[r]);
            KS(store)(row + LANES, KS(load)(row + LANES) + high[r]);
        }
    } else {
        for (int r = 0; r < rows; r++) {
            float sums[NR];
            KS(store)(sums, low[r]);
            KS(store)(sums + LANES, high[r]);
            for (int j = 0; j < cols; j++) c[(size_t)r * ldc + j] += sums[j];
        }
    }
}

// A tile computes only the rows it has, in thirds of MR: a one-text batch of 15 tokens takes a tile of 12 rows and
// one of 4 (AVX-512), not two of 12: 1.15-1.26× faster at batch 1 on an Intel Xeon (docs/benchmarks.md, Embedding).
// Finer steps (every even height) measured the same. Each row's sums are the same, in the same order, whatever the
// height.
static void KS(tile)(int kc, const float *restrict a, const float *restrict b, float *c, int ldc, int rows, int cols) {
    switch ((rows * 3 + MR - 1) / MR) {
    case 1: KS(tile_of)(MR / 3, kc, a, b, c, ldc, rows, cols); break;
    case 2: KS(tile_of)(2 * MR / 3, kc, a, b, c, ldc, rows, cols); break;
    default: KS(tile_of)(MR, kc, a, b, c, ldc, rows, cols); break;
    }
}

// Columns of panels [first, end) of C += A · Wᵀ. `apack` holds MC × KC floats.
static void KS(gemm_panels)(int m, int n, int k, const float *a, int lda, const float *packed, float *c, int ldc,
                            int first, int end, float *apack) {
    for (int k0 = 0; k0 < k; k0 += KC) {
        int kc = k - k0 < KC ? k - k0 : KC;
        for (int m0 = 0; m0 < m; m0 += MC) {
            int mc = m - m0 < MC ? m - m0 : MC;
            int tiles = (mc + MR - 1) / MR;
            // A's rows interleaved by tile (kc × MR each, zero rows past the end), so the kernel
            // reads one contiguous stream; each thread packs its own copy.
            for (int t = 0; t < tiles; t++) {
                float *to = apack + (size_t)t * kc * MR;
                for (int r = 0; r < MR; r++) {
                    int row = m0 + t * MR + r;
                    if (row < m) {
                        const float *from = a + (size_t)row * lda + k0;
                        for (int kk = 0; kk < kc; kk++) to[kk * MR + r] = from[kk];
                    } else {
                        for (int kk = 0; kk < kc; kk++) to[kk * MR + r] = 0;
                    }
                }
            }
            for (int p = first; p < end; p++) {
                const float *b = packed + ((size_t)p * k + k0) * NR;
                int cols = n - p * NR < NR ? n - p * NR : NR;
                for (int t = 0; t < tiles; t++) {
                    int rows = mc - t * MR < MR ? mc - t * MR : MR;
                    KS(tile)(kc, apack + (size_t)t * kc * MR, b, c + (size_t)(m0 + t * MR) * ldc + p * NR, ldc, rows,
                             cols);
                }
            }
        }
    }
}

// S = scale · Q Kᵀ. Kᵀ goes to `transposed` (d × n) first, so that the inner loop runs along a row of S
// and vectorizes without reordering any sum.
static void KS(attention_scores)(int n, int d, const float *q, const float *k, int stride, float scale,
                                 float *scores, float *transposed) {
    for (int j = 0; j < n; j++) {
        for (int c = 0; c < d; c++) transposed[c * n + j] = k[(size_t)j * stride + c];
    }
    for (int i = 0; i < n; i++) {
        float *row = scores + (size_t)i * n;
        for (int j = 0; j < n; j++) row[j] = 0;
        for (int c = 0; c < d; c++) {
            float qc = q[(size_t)i * stride + c] * scale;
            const float *kt = transposed + (size_t)c * n;
            for (int j = 0; j < n; j++) row[j] += qc * kt[j];
        }
    }
}

static void KS(attention_context)(int n, int d, const float *p, const float *v, int stride, float *out,
                                  int out_stride) {
    for (int i = 0; i < n; i++) {
        float *o = out + (size_t)i * out_stride;
        for (int c = 0; c < d; c++) o[c] = 0;
        for (int j = 0; j < n; j++) {
            float pj = p[(size_t)i * n + j];
            const float *vj = v + (size_t)j * stride;
            for (int c = 0; c < d; c++) o[c] += pj * vj[c];
        }
    }
}

// Four accumulators keep four multiply-adds in flight; `length` is a multiple of 16, so of LANES.
static float KS(dot)(const float *a, const float *b, long length) {
    VEC s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    long i = 0;
    for (; i + 4 * LANES <= length; i += 4 * LANES) {
        s0 += KS(load)(a + i) * KS(load)(b + i);
        s1 += KS(load)(a + i + LANES) * KS(load)(b + i + LANES);
        s2 += KS(load)(a + i + 2 * LANES) * KS(load)(b + i + 2 * LANES);
        s3 += KS(load)(a + i + 3 * LANES) * KS(load)(b + i + 3 * LANES);
    }
    for (; i < length; i += LANES) s0 += KS(load)(a + i) * KS(load)(b + i);
    return KS(sum)((s0 + s1) + (s2 + s3));
}

// One query against four vectors: the query is loaded once per step for all four, and four
// independent streams keep more cache misses in flight than four calls would.
static void KS(dot4)(const float *q, const float *p0, const float *p1, const float *p2, const float *p3, long length,
                     float *out) {
    VEC s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (long i = 0; i < length; i += LANES) {
        VEC x = KS(load)(q + i);
        s0 += x * KS(load)(p0 + i);
        s1 += x * KS(load)(p1 + i);
        s2 += x * KS(load)(p2 + i);
        s3 += x * KS(load)(p3 + i);
    }
    out[0] = KS(sum)(s0);
    out[1] = KS(sum)(s1);
    out[2] = KS(sum)(s2);
    out[3] = KS(sum)(s3);
}

#undef VEC
#undef NR
#undef KC
#undef MC
