// Marks functions usable from host and device code: kernel math lives once.
#pragma once
#if defined(__CUDACC__)
#define NC_HD __host__ __device__ __forceinline__
#else
#define NC_HD inline
#endif
