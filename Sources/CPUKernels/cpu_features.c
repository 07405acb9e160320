#include "cpu_kernels.h"

#include <stdio.h>
#include <string.h>
#include <stdlib.h>

#if defined(__x86_64__)
#include <cpuid.h>

static uint64_t read_xcr0(void) {
    uint32_t eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return ((uint64_t)edx << 32) | eax;
}

uint32_t cpu_features_detect(void) {
    unsigned eax, ebx, ecx, edx;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return 0;
    // AVX state (XMM and YMM) must be enabled by the OS (OSXSAVE, then XCR0 bits 1-2), and for
    // AVX-512 the opmask and upper ZMM state too (XCR0 bits 5-7).
    if (!(ecx & bit_OSXSAVE)) return 0;
    uint64_t xcr0 = read_xcr0();
    int os_avx = (xcr0 & 0x6) == 0x6;
    int os_avx512 = os_avx && (xcr0 & 0xE0) == 0xE0;
    uint32_t features = 0;
    if (os_avx && (ecx & bit_AVX)) features |= CPU_FEATURE_AVX;
    if (os_avx && (ecx & bit_FMA)) features |= CPU_FEATURE_FMA;
    if (os_avx && (ecx & bit_F16C)) features |= CPU_FEATURE_F16C;
    if (ecx & bit_MOVBE) features |= CPU_FEATURE_MOVBE;
    if (__get_cpuid(0x80000001, &eax, &ebx, &ecx, &edx) && (ecx & bit_LZCNT)) features |= CPU_FEATURE_LZCNT;
    if (__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) {
        unsigned subleaves = eax;
        if (os_avx && (ebx & bit_AVX2)) features |= CPU_FEATURE_AVX2;
        if (ebx & bit_BMI) features |= CPU_FEATURE_BMI1;
        if (ebx & bit_BMI2) features |= CPU_FEATURE_BMI2;
        if (os_avx512) {
            if (ebx & bit_AVX512F) features |= CPU_FEATURE_AVX512F;
            if (ebx & bit_AVX512DQ) features |= CPU_FEATURE_AVX512DQ;
            if (ebx & bit_AVX512BW) features |= CPU_FEATURE_AVX512BW;
            if (ebx & bit_AVX512VL) features |= CPU_FEATURE_AVX512VL;
            if (ecx & bit_AVX512VNNI) features |= CPU_FEATURE_AVX512VNNI;
        }
        if (subleaves >= 1 && __get_cpuid_count(7, 1, &eax, &ebx, &ecx, &edx)) {
            if (os_avx && (eax & (1u << 4))) features |= CPU_FEATURE_AVXVNNI;
            if (os_avx512 && (eax & (1u << 5))) features |= CPU_FEATURE_AVX512BF16;
        }
    }
    return features;
}

void cpu_brand(char *buffer, size_t capacity) {
    if (capacity == 0) return;
    buffer[0] = 0;
    unsigned words[12];
    if (__get_cpuid_max(0x80000000, NULL) < 0x80000004) return;
    for (unsigned leaf = 0; leaf < 3; leaf++) {
        __get_cpuid(0x80000002 + leaf, &words[4 * leaf], &words[4 * leaf + 1], &words[4 * leaf + 2],
                    &words[4 * leaf + 3]);
    }
    char brand[49];
    memcpy(brand, words, 48);
    brand[48] = 0;
    const char *start = brand;
    while (*start == ' ') start++;
    size_t length = strlen(start);
    while (length > 0 && start[length - 1] == ' ') length--;
    if (length >= capacity) length = capacity - 1;
    memcpy(buffer, start, length);
    buffer[length] = 0;
}

#else

uint32_t cpu_features_detect(void) { return 0; }
void cpu_brand(char *buffer, size_t capacity) {
    if (capacity > 0) buffer[0] = 0;
}

#endif

kernel_set_id kernel_set_for_features(uint32_t features) {
    uint32_t avx512 = CPU_FEATURE_AVX512F | CPU_FEATURE_AVX512DQ | CPU_FEATURE_AVX512BW | CPU_FEATURE_AVX512VL |
                      CPU_FEATURE_FMA;
    uint32_t avx2 = CPU_FEATURE_AVX | CPU_FEATURE_AVX2 | CPU_FEATURE_FMA;
    if ((features & avx512) == avx512 && kernel_set_compiled(KERNEL_SET_AVX512)) return KERNEL_SET_AVX512;
    if ((features & avx2) == avx2 && kernel_set_compiled(KERNEL_SET_AVX2)) return KERNEL_SET_AVX2;
    return KERNEL_SET_PORTABLE;
}

int kernel_set_named(const char *name) {
    if (strcmp(name, "portable") == 0) return KERNEL_SET_PORTABLE;
    if (strcmp(name, "avx2") == 0) return KERNEL_SET_AVX2;
    if (strcmp(name, "avx512") == 0) return KERNEL_SET_AVX512;
    return -1;
}

kernel_set_id kernel_set_selected(void) {
    kernel_set_id best = kernel_set_for_features(cpu_features_detect());
    const char *requested = getenv("DISTILL_KERNELS");
    int named = requested ? kernel_set_named(requested) : -1;
    // A narrower set than the best one is always compiled and runnable; the ids are ordered by width.
    return named >= 0 && named <= (int)best ? (kernel_set_id)named : best;
}
