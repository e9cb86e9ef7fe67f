// The rows kernels of DotInc (instr_dot.cpp): Y += A X with X contiguous and
// A's rows contiguous, as dot products vectorised along the row, several rows
// (and, for a shared A, several trials) at a time sharing loads.  Every
// row's sum is add_row_sum's: the same bits in every tile and at every width.
#pragma once
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>

#include "simd.h"

namespace nc {
namespace dot {

// a * b + c rounded once: the FMA instruction where the target has it (AVX2
// and up), else libm's fma (the same result).
template <typename T>
NC_INLINE T fused_multiply_add(T a, T b, T c) {
    if constexpr (std::is_same_v<T, float>)
        return __builtin_fmaf(a, b, c);
    else
        return __builtin_fma(a, b, c);
}

// Sum of the lanes, by halving (no per-lane extraction).
template <typename T, int B>
NC_INLINE T hsum(typename Simd<T, B>::V v) {
    if constexpr (Simd<T, B>::W == 1) {
        return v[0];
    } else {
        using H = typename Simd<T, B / 2>::V;
        H lo, hi;
        std::memcpy(&lo, &v, sizeof lo);
        std::memcpy(&hi, reinterpret_cast<const char*>(&v) + sizeof lo, sizeof hi);
        return hsum<T, B / 2>(lo + hi);
    }
}

// *y += a . x, from `s`: the lanes' sums of columns [0, cv) (vectors); the
// last columns one at a time.  Every kernel of the rows family sums a row so.
// The last columns' multiply-adds are fused explicitly: left to contraction,
// a row's sum came out an ulp apart in an AVX2 tile and the AVX-512 tile of
// the same rows (columns not a multiple of 8).
template <typename T, int B>
NC_INLINE void add_row_sum(typename Simd<T, B>::V s, const T* a, const T* x, int64_t cv,
                           int64_t cols, T* y) {
    T t = hsum<T, B>(s);
    for (int64_t c = cv; c < cols; ++c) t = fused_multiply_add(a[c], x[c], t);
    *y += t;
}

// R rows from row r of a rows-kernel block: R dot products sharing the X loads.
template <typename T, int B, int R>
NC_INLINE void rows_tile(const T* A, int64_t rs, int64_t cols, const T* X, T* Y, int64_t ys,
                         int64_t r) {
    using S = Simd<T, B>;
    using V = typename S::V;
    constexpr int W = S::W;
    const int64_t cv = cols - cols % W;
    V s[R] = {};  // in registers: every loop over it is unrolled
    for (int64_t c = 0; c < cv; c += W) {
        const V x = S::load(X + c);
#pragma GCC unroll 8
        for (int i = 0; i < R; ++i) s[i] += S::load(A + (r + i) * rs + c) * x;
    }
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i)
        add_row_sum<T, B>(s[i], A + (r + i) * rs, X, cv, cols, Y + (r + i) * ys);
}

// Rows [r0, r1) of a rows-kernel block (A rows and X contiguous) for one trial.
template <typename T, int B>
NC_INLINE void rows_kernel(const T* A, int64_t rs, int64_t cols, const T* X, T* Y, int64_t ys,
                           int64_t r0, int64_t r1) {
    int64_t r = r0;
    for (; r + 8 <= r1; r += 8) rows_tile<T, B, 8>(A, rs, cols, X, Y, ys, r);
    for (; r + 4 <= r1; r += 4) rows_tile<T, B, 4>(A, rs, cols, X, Y, ys, r);
    // the last rows in one tile: a row alone is one chain of dependent
    // multiply-adds (10 rows x 7744 columns: the 2 rows after the tile of 8
    // took as long as it, one after the other)
    switch (r1 - r) {
        case 3: rows_tile<T, B, 3>(A, rs, cols, X, Y, ys, r); break;
        case 2: rows_tile<T, B, 2>(A, rs, cols, X, Y, ys, r); break;
        case 1: rows_tile<T, B, 1>(A, rs, cols, X, Y, ys, r); break;
        default: break;
    }
}

// Rows [r, r + R) of a shared A for NT trials: each A load feeds NT
// multiply-adds, each X load R, and A is read once for the NT trials (a dense
// layer's weights, 10 x 7744, were streamed from L2 once per trial).  Each
// (row, trial) sum is rows_tile's: the same bits.
template <typename T, int B, int R, int NT>
NC_INLINE void rows_trials_tile(const T* A, int64_t rs, int64_t cols, const T* const* X,
                                T* const* Y, int64_t ys, int64_t r) {
    using S = Simd<T, B>;
    using V = typename S::V;
    constexpr int W = S::W;
    const int64_t cv = cols - cols % W;
    V s[R * NT] = {};  // in registers: every loop over it is unrolled
    for (int64_t c = 0; c < cv; c += W) {
#pragma GCC unroll 4
        for (int i = 0; i < R; ++i) {
            const V a = S::load(A + (r + i) * rs + c);
#pragma GCC unroll 4
            for (int u = 0; u < NT; ++u) s[i * NT + u] += a * S::load(X[u] + c);
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < R; ++i)
#pragma GCC unroll 4
        for (int u = 0; u < NT; ++u)
            add_row_sum<T, B>(s[i * NT + u], A + (r + i) * rs, X[u], cv, cols,
                              Y[u] + (r + i) * ys);
}

// The vector of twice the width whose halves are lo and hi.
template <typename H, size_t... K>
NC_INLINE auto concat(H lo, H hi, std::index_sequence<K...>) {
    return __builtin_shufflevector(lo, hi, K..., (K + sizeof...(K))...);
}

// rows_trials_tile at AVX-512's width, bit for bit AVX2's (B = 32): a 64-byte
// vector holds two rows' AVX2 vectors of the same columns (its halves), X's
// AVX2 vector is in both halves, so each half sums what AVX2's vector sums,
// in the same order; then each half as AVX2 finishes a row.  Tiles of R2
// pairs of rows x 4 trials (R2 = 4: 16 sums, in AVX-512's 32 registers).
template <typename T, int R2>
NC_INLINE void rows_pairs_tile(const T* A, int64_t rs, int64_t cols, const T* const* X,
                               T* const* Y, int64_t ys, int64_t r) {
    using S8 = Simd<T, 32>;   // AVX2's vector
    using S16 = Simd<T, 64>;  // two of them
    using H = typename S8::V;
    using V = typename S16::V;
    constexpr int W = S8::W, NT = 4;
    const int64_t cv = cols - cols % W;
    V s[R2 * NT] = {};
    for (int64_t c = 0; c < cv; c += W) {
        H x8[NT];
#pragma GCC unroll 4
        for (int u = 0; u < NT; ++u) x8[u] = S8::load(X[u] + c);
#pragma GCC unroll 4
        for (int i = 0; i < R2; ++i) {
            const T* a0 = A + (r + 2 * i) * rs + c;  // rows r + 2i and r + 2i + 1
            const V a = concat(S8::load(a0), S8::load(a0 + rs), std::make_index_sequence<W>{});
#pragma GCC unroll 4
            for (int u = 0; u < NT; ++u)
                s[i * NT + u] += a * concat(x8[u], x8[u], std::make_index_sequence<W>{});
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < R2; ++i)
#pragma GCC unroll 4
        for (int u = 0; u < NT; ++u) {
            H lo, hi;
            std::memcpy(&lo, &s[i * NT + u], sizeof lo);
            std::memcpy(&hi, reinterpret_cast<const char*>(&s[i * NT + u]) + sizeof lo,
                        sizeof hi);
            const int64_t r0 = r + 2 * i;
            add_row_sum<T, 32>(lo, A + r0 * rs, X[u], cv, cols, Y[u] + r0 * ys);
            add_row_sum<T, 32>(hi, A + (r0 + 1) * rs, X[u], cv, cols, Y[u] + (r0 + 1) * ys);
        }
}

// Rows [r0, r1) of a shared A for four trials at AVX-512's width
// (rows_pairs_tile; a last odd row as AVX2 runs it).  A function of its own,
// for the target.
template <typename T>
NC_TARGET_AVX512 __attribute__((noinline)) void rows_kernel_trials_avx512(
    const T* A, int64_t rs, int64_t cols, const T* const* X, T* const* Y, int64_t ys,
    int64_t r0, int64_t r1) {
    int64_t r = r0;
    for (; r + 8 <= r1; r += 8) rows_pairs_tile<T, 4>(A, rs, cols, X, Y, ys, r);
    for (; r + 2 <= r1; r += 2) rows_pairs_tile<T, 1>(A, rs, cols, X, Y, ys, r);
    if (r < r1) rows_trials_tile<T, 32, 1, 4>(A, rs, cols, X, Y, ys, r);
}

// Rows [r0, r1) of a shared A for four trials (rows_trials_tile, two rows at a time).
template <typename T, int B>
NC_INLINE void rows_kernel_trials(const T* A, int64_t rs, int64_t cols, const T* const* X,
                                  T* const* Y, int64_t ys, int64_t r0, int64_t r1) {
    int64_t r = r0;
    for (; r + 2 <= r1; r += 2) rows_trials_tile<T, B, 2, 4>(A, rs, cols, X, Y, ys, r);
    if (r < r1) rows_trials_tile<T, B, 1, 4>(A, rs, cols, X, Y, ys, r);
}

// R rows of any blocks, each with its own A row, X and Y element, all of
// `cols` columns: R independent sums (a single row's multiply-adds wait for
// each other: small blocks, e.g. decoders of one-dimensional ensembles, ran at
// the adder's latency).  Each row is summed as rows_tile sums it.
template <typename T, int B, int R>
NC_INLINE void rows_of_blocks(const T* const* A, const T* const* X, T* const* Y, int64_t cols) {
    using S = Simd<T, B>;
    using V = typename S::V;
    constexpr int W = S::W;
    const int64_t cv = cols - cols % W;
    V s[R] = {};  // in registers: every loop over it is unrolled
    for (int64_t c = 0; c < cv; c += W) {
#pragma GCC unroll 4
        for (int i = 0; i < R; ++i) s[i] += S::load(A[i] + c) * S::load(X[i] + c);
    }
#pragma GCC unroll 4
    for (int i = 0; i < R; ++i) add_row_sum<T, B>(s[i], A[i], X[i], cv, cols, Y[i]);
}

}  // namespace dot
}  // namespace nc
