// DotInc's kernel for inputs that are mostly zeros (spikes into decoders and
// weights, instr_dot.cpp): the nonzero columns of X listed without branches,
// then only their columns of A^T added.
#pragma once
#include <algorithm>
#include <cstdint>

#include "simd.h"

namespace nc {
namespace dot {

// Rows of A^T as stored for sparse_x_kernel: padded to whole vectors.
inline int64_t sparse_rows(int64_t rows) { return (rows + 15) / 16 * 16; }

// sums[i * W ...] = sum over the listed columns c of AT[c, ...] X[c], for NV
// vectors: the even-numbered and the odd-numbered listed columns in two sums
// each, added at the end (with one, each multiply-add waited for the last:
// ~1 ns per listed column).
template <typename T, int B, int NV>
NC_INLINE void sparse_tile(const T* AT, int64_t pad, const int32_t* listed, int64_t n,
                           const T* X, T* sums) {
    using S = Simd<T, B>;
    using V = typename S::V;
    V even[NV] = {}, odd[NV] = {};  // in registers: every loop over them is unrolled
    int64_t k = 0;
    for (; k + 2 <= n; k += 2) {
        const T *a0 = AT + listed[k] * pad, *a1 = AT + listed[k + 1] * pad;
        const V x0 = NC_BROADCAST(V, X[listed[k]]), x1 = NC_BROADCAST(V, X[listed[k + 1]]);
#pragma GCC unroll 4
        for (int i = 0; i < NV; ++i) {
            even[i] += S::load(a0 + i * S::W) * x0;
            odd[i] += S::load(a1 + i * S::W) * x1;
        }
    }
    if (k < n) {
        const T* a = AT + listed[k] * pad;
        const V x = NC_BROADCAST(V, X[listed[k]]);
#pragma GCC unroll 4
        for (int i = 0; i < NV; ++i) even[i] += S::load(a + i * S::W) * x;
    }
#pragma GCC unroll 4
    for (int i = 0; i < NV; ++i) S::store(sums + i * S::W, even[i] + odd[i]);
}

// The columns c with X[c] != 0 (nan too), in order, into `listed` (room for
// cols + 8 entries); returns how many, or a number above `limit` as soon as
// there are more than that, or more than half of the columns seen past the
// first 64 (a dense X: rates into decoders would pay for all of the listing
// and then run the dense kernel).  Eight columns at a time (sixteen at
// AVX-512's width): their nonzero lanes' indices compressed to the front of a
// vector of column indices (one permutation, or AVX-512's compress) and
// appended, without branches (spikes are unpredictable).  As many for doubles
// too (two vectors' masks): half as many cost twice the time.
template <typename T, int B>
NC_INLINE int64_t list_nonzeros(const T* X, int64_t cols, int64_t limit, int32_t* listed) {
    using S = Simd<T, B>;
    using V = typename S::V;
    using SI = Simd<int32_t, std::max(B, 32)>;  // 8 or 16 column indices
    constexpr int W = S::W, K = SI::W;
    static_assert(K % W == 0, "a whole number of vectors of X per eight columns");
    typename SI::V c_lanes;
    for (int i = 0; i < K; ++i) c_lanes[i] = i;
    int64_t n = 0, c = 0;
    for (; c + K <= cols; c += K, c_lanes += K) {
        unsigned bits = 0;
#pragma GCC unroll 4
        for (int v = 0; v < K / W; ++v)
            bits |= mask_bits<T, B>(S::load(X + c + v * W) != V{}) << (v * W);
        SI::store(listed + n, compress<int32_t, std::max(B, 32)>(c_lanes, bits));
        n += __builtin_popcount(bits);
        if (n > limit || 2 * n > c + 64) return limit + 1;
    }
    for (; c < cols; ++c) {
        listed[n] = static_cast<int32_t>(c);
        n += X[c] != T(0);
    }
    return n;
}

// Y += A X for one trial using only the nonzero entries of X, when there are
// at most cols / 4 of them (returns false, doing nothing, otherwise).  AT is
// A^T with rows padded (sparse_rows); X contiguous; `listed` has room for cols.
template <typename T, int B>
NC_INLINE bool sparse_x_kernel(const T* AT, int64_t rows, int64_t cols, const T* X, T* Y,
                               int64_t ys, int32_t* listed) {
    using S = Simd<T, B>;
    constexpr int W = S::W;
    const int64_t n = list_nonzeros<T, B>(X, cols, cols / 4, listed);
    if (n > cols / 4) return false;
    const int64_t pad = sparse_rows(rows);
    alignas(64) T sums[4 * W];
    for (int64_t r0 = 0; r0 < rows; r0 += 4 * W) {
        const int64_t nv = std::min<int64_t>(4, (pad - r0) / W);
        const T* at = AT + r0;
        switch (nv) {
            case 4: sparse_tile<T, B, 4>(at, pad, listed, n, X, sums); break;
            case 3: sparse_tile<T, B, 3>(at, pad, listed, n, X, sums); break;
            case 2: sparse_tile<T, B, 2>(at, pad, listed, n, X, sums); break;
            default: sparse_tile<T, B, 1>(at, pad, listed, n, X, sums); break;
        }
        const int64_t r1 = std::min(rows, r0 + 4 * W);
        for (int64_t r = r0; r < r1; ++r) Y[r * ys] += sums[r - r0];
    }
    return true;
}

}  // namespace dot
}  // namespace nc
