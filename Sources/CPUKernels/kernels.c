#include "cpu_kernels.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#define KS(name) name##_portable
#define LANES 4
#define MR 6
#include "kernel_set.h"
#undef KS
#undef LANES
#undef MR

#if defined(__x86_64__)
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#define KS(name) name##_avx2
#define LANES 8
#define MR 6
#include "kernel_set.h"
#undef KS
#undef LANES
#undef MR
#pragma clang attribute pop

#pragma clang attribute push(__attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,avx2,fma"))), \
                             apply_to = function)
#define KS(name) name##_avx512
#define LANES 16
#define MR 12
#include "kernel_set.h"
#undef KS
#undef LANES
#undef MR
#pragma clang attribute pop
#endif

// The largest tile of A any set packs: MC × KC floats (16 · 12 × 384).
enum { APACK_FLOATS = 16 * 12 * 384 };

int kernel_set_compiled(kernel_set_id set) {
#if defined(__x86_64__)
    return set == KERNEL_SET_PORTABLE || set == KERNEL_SET_AVX2 || set == KERNEL_SET_AVX512;
#else
    return set == KERNEL_SET_PORTABLE;
#endif
}

// Every dispatch below: the set's function on x86-64, the portable one otherwise (unreachable there,
// as kernel_set_for_features never picks a set that was not compiled).
#if defined(__x86_64__)
#define DISPATCH(set, call)                                          \
    switch (set) {                                                   \
    case KERNEL_SET_AVX512: return call##_avx512;                    \
    case KERNEL_SET_AVX2: return call##_avx2;                        \
    default: return call##_portable;                                 \
    }
#else
#define DISPATCH(set, call) return call##_portable;
#endif

int kernel_set_panel_width(kernel_set_id set) {
    switch (set) {
    case KERNEL_SET_AVX512: return 32;
    case KERNEL_SET_AVX2: return 16;
    default: return 8;
    }
}

size_t packed_weight_count(kernel_set_id set, int n, int k) {
    size_t width = (size_t)kernel_set_panel_width(set);
    return ((size_t)n + width - 1) / width * width * (size_t)k;
}

typedef void (*pack_function)(const float *, int, int, float *);
static pack_function pack_for(kernel_set_id set) { DISPATCH(set, pack_weight) }

void pack_weight(kernel_set_id set, const float *weight, int n, int k, float *packed) {
    pack_for(set)(weight, n, k, packed);
}

typedef void (*gemm_function)(int, int, int, const float *, int, const float *, float *, int, int, int, float *);
static gemm_function gemm_for(kernel_set_id set) { DISPATCH(set, gemm_panels) }

typedef void (*scores_function)(int, int, const float *, const float *, int, float, float *, float *);
static scores_function scores_for(kernel_set_id set) { DISPATCH(set, attention_scores) }

typedef void (*context_function)(int, int, const float *, const float *, int, float *, int);
static context_function context_for(kernel_set_id set) { DISPATCH(set, attention_context) }

dot_kernel dot_kernel_for(kernel_set_id set) { DISPATCH(set, dot) }
dot4_kernel dot4_kernel_for(kernel_set_id set) { DISPATCH(set, dot4) }

// ---- Thread team -----------------------------------------------------------------------------

typedef void (*team_job)(void *context, int member, int members);

struct thread_team {
    int size;
    pthread_t *threads;
    // Per member: the tile of A it packs, and (member 0) the transposed keys of attention.
    float **scratch;
    team_job job;
    void *context;
    atomic_uint generation;
    atomic_int pending;
    atomic_int stopping;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_cond_t finished;
};

// About 20-100 µs of polling before sleeping: longer than the gaps between the products of one
// forward pass, far shorter than the gaps between requests.
enum { SPINS = 4000 };

static inline void relax(void) {
#if defined(__x86_64__)
    __builtin_ia32_pause();
#endif
}

typedef struct {
    thread_team *team;
    int member;
} member_start;

static void *member_main(void *argument) {
    member_start start = *(member_start *)argument;
    free(argument);
    thread_team *team = start.team;
    unsigned seen = 0;
    for (;;) {
        unsigned generation;
        int spins = 0;
        while ((generation = atomic_load_explicit(&team->generation, memory_order_acquire)) == seen &&
               spins++ < SPINS) {
            relax();
        }
        if (generation == seen) {
            pthread_mutex_lock(&team->lock);
            while ((generation = atomic_load(&team->generation)) == seen && !atomic_load(&team->stopping)) {
                pthread_cond_wait(&team->wake, &team->lock);
            }
            pthread_mutex_unlock(&team->lock);
        }
        if (atomic_load(&team->stopping)) return NULL;
        seen = generation;
        team->job(team->context, start.member, team->size);
        if (atomic_fetch_sub_explicit(&team->pending, 1, memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&team->lock);
            pthread_cond_signal(&team->finished);
            pthread_mutex_unlock(&team->lock);
        }
    }
}

thread_team *thread_team_create(int threads) {
    if (threads < 1) threads = 1;
    thread_team *team = calloc(1, sizeof *team);
    team->size = threads;
    team->threads = calloc((size_t)threads, sizeof(pthread_t));
    team->scratch = calloc((size_t)threads, sizeof(float *));
    for (int i = 0; i < threads; i++) team->scratch[i] = aligned_alloc(64, APACK_FLOATS * sizeof(float));
    pthread_mutex_init(&team->lock, NULL);
    pthread_cond_init(&team->wake, NULL);
    pthread_cond_init(&team->finished, NULL);
    for (int i = 1; i < threads; i++) {
        member_start *start = malloc(sizeof *start);
        *start = (member_start){team, i};
        pthread_create(&team->threads[i], NULL, member_main, start);
    }
    return team;
}

void thread_team_destroy(thread_team *team) {
    if (!team) return;
    pthread_mutex_lock(&team->lock);
    atomic_store(&team->stopping, 1);
    atomic_fetch_add(&team->generation, 1);
    pthread_cond_broadcast(&team->wake);
    pthread_mutex_unlock(&team->lock);
    for (int i = 1; i < team->size; i++) pthread_join(team->threads[i], NULL);
    for (int i = 0; i < team->size; i++) free(team->scratch[i]);
    pthread_mutex_destroy(&team->lock);
    pthread_cond_destroy(&team->wake);
    pthread_cond_destroy(&team->finished);
    free(team->scratch);
    free(team->threads);
    free(team);
}

int thread_team_size(const thread_team *team) { return team ? team->size : 1; }

// Runs job(context, member, size) on every member, the caller being member 0; returns when all are done.
static void team_run(thread_team *team, team_job job, void *context) {
    if (team->size == 1) {
        job(context, 0, 1);
        return;
    }
    team->job = job;
    team->context = context;
    atomic_store_explicit(&team->pending, team->size - 1, memory_order_relaxed);
    pthread_mutex_lock(&team->lock);
    atomic_fetch_add_explicit(&team->generation, 1, memory_order_release);
    pthread_cond_broadcast(&team->wake);
    pthread_mutex_unlock(&team->lock);
    job(context, 0, team->size);
    int spins = 0;
    while (atomic_load_explicit(&team->pending, memory_order_acquire) > 0 && spins++ < SPINS) relax();
    if (atomic_load_explicit(&team->pending, memory_order_acquire) > 0) {
        pthread_mutex_lock(&team->lock);
        while (atomic_load(&team->pending) > 0) pthread_cond_wait(&team->finished, &team->lock);
        pthread_mutex_unlock(&team->lock);
    }
}

// ---- Products --------------------------------------------------------------------------------

typedef struct {
    gemm_function gemm;
    thread_team *team;
    int m, n, k, lda, ldc, panels;
    const float *a, *packed;
    float *c;
} gemm_job;

static void run_gemm_share(void *context, int member, int members) {
    gemm_job *job = context;
    int first = (int)((long)job->panels * member / members);
    int end = (int)((long)job->panels * (member + 1) / members);
    if (first < end) {
        job->gemm(job->m, job->n, job->k, job->a, job->lda, job->packed, job->c, job->ldc, first, end,
                  job->team->scratch[member]);
    }
}

void packed_gemm(kernel_set_id set, thread_team *team, int m, int n, int k, const float *a, int lda,
                 const float *packed, float *c, int ldc) {
    if (m <= 0 || n <= 0 || k <= 0) return;
    int width = kernel_set_panel_width(set);
    gemm_job job = {gemm_for(set), team, m, n, k, lda, ldc, (n + width - 1) / width, a, packed, c};
    if (team) {
        team_run(team, run_gemm_share, &job);
    } else {
        float *scratch = aligned_alloc(64, APACK_FLOATS * sizeof(float));
        job.gemm(m, n, k, a, lda, packed, c, ldc, 0, job.panels, scratch);
        free(scratch);
    }
}

void attention_scores(kernel_set_id set, int n, int d, const float *q, const float *k, int stride, float scale,
                      float *scores, float *transposed) {
    scores_for(set)(n, d, q, k, stride, scale, scores, transposed);
}

void attention_context(kernel_set_id set, int n, int d, const float *p, const float *v, int stride, float *out,
                       int out_stride) {
    context_for(set)(n, d, p, v, stride, out, out_stride);
}
