// Marks functions usable from host and device code: kernel math lives once.
#pragma once
#if defined(__CUDACC__)
#define NC_HD __host__ __device__ __forceinline__
#else
#define NC_HD inline
#endif

// Unrolls the next loop in device code, where a loop over a small constant
// count must unroll for its array to stay in registers.
#if defined(__CUDA_ARCH__)
#define NC_UNROLL _Pragma("unroll")
#define NC_UNROLL4 _Pragma("unroll 4")  // a loop of unknown count: 4 loads in flight
#define NC_NO_UNROLL _Pragma("unroll 1")  // a loop whose unrolled copies would cost registers
#else
#define NC_UNROLL
#define NC_UNROLL4
#define NC_NO_UNROLL
#endif

// The index of the lowest set bit of a nonzero x.
NC_HD int lowest_bit(unsigned x) {
#if defined(__CUDA_ARCH__)
    return __ffs(x) - 1;
#else
    return __builtin_ctz(x);
#endif
}
