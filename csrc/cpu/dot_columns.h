// The columns kernel of DotInc (instr_dot.cpp): Y += A X for a block whose A
// is shared by all trials and packed transposed (A^T, cols x rows), a tile of
// rows accumulating column by column, vectorised across rows (no horizontal
// sums).  Each row's sum is its multiply-adds in column order, whatever the
// tile, the trials at a time and the vector width: the same bits.
#pragma once
#include <cstdint>
#include <cstring>

#include "simd.h"

namespace nc {
namespace dot {

// Y[r .. r + W) += acc, Y contiguous (YC) or strided by ys; for a block that
// starts from I (fusion.py: I non-null, at row r, stride is), Y = I + acc: the
// one rounding of adding acc to a Y set to I, without writing Y twice.
template <typename T, int B, bool YC>
NC_INLINE void add_to_y(T* Y, int64_t ys, const T* I, int64_t is, typename Simd<T, B>::V acc) {
    using S = Simd<T, B>;
    if (I != nullptr) {
        if (YC && is == 1) {
            S::store(Y, S::load(I) + acc);
        } else {
            for (int i = 0; i < S::W; ++i) Y[i * ys] = I[i * is] + acc[i];
        }
    } else if constexpr (YC) {
        S::store(Y, S::load(Y) + acc);
    } else {
        for (int i = 0; i < S::W; ++i) Y[i * ys] += acc[i];
    }
}

// A trial's rows [r, r + 4W) of a columns-kernel tile: Y = I + sums (I of
// the trial given), else Y += sums.  (A function, not a lambda: a lambda
// that is not inlined is compiled for the base target, and vectors passed to
// it break the calling convention.)
template <typename T, int B, bool YC>
NC_INLINE void columns_store4(T* Y, const T* I, int64_t r, int64_t ys, int64_t is,
                              typename Simd<T, B>::V v0, typename Simd<T, B>::V v1,
                              typename Simd<T, B>::V v2, typename Simd<T, B>::V v3) {
    constexpr int W = Simd<T, B>::W;
    T* y = Y + r * ys;
    const T* i0 = I ? I + r * is : nullptr;
    const int64_t step = YC ? W : W * ys;
    // I at the k-th vector of rows (null stays null: add to Y)
    auto at = [&](int k) -> const T* { return i0 ? i0 + k * W * is : nullptr; };
    add_to_y<T, B, YC>(y, ys, i0, is, v0);
    add_to_y<T, B, YC>(y + step, ys, at(1), is, v1);
    add_to_y<T, B, YC>(y + 2 * step, ys, at(2), is, v2);
    add_to_y<T, B, YC>(y + 3 * step, ys, at(3), is, v3);
}

// Rows [r, r + 4W) of a columns-kernel block for one, two or four trials
// (NT; four: AVX-512's 32 registers): AT points at A^T[0, r] (row stride
// `rows`).  Each A^T load feeds NT multiply-adds.  The sums are named
// variables, not arrays: GCC kept arrays of vectors on the stack (zeroed with
// rep stos, spilled and reloaded), which made this kernel several times
// slower than its loads and stores of Y.  Each sum is its row's multiply-adds
// in column order, whatever NT and the width: the same bits.
template <typename T, int B, int NT, bool YC>
NC_INLINE void columns_tile4(const T* AT, int64_t rows, int64_t cols, const T* const* X,
                             int64_t xs, T* const* Y, int64_t r, int64_t ys,
                             const T* const* I, int64_t is) {
    using S = Simd<T, B>;
    using V = typename S::V;
    constexpr int W = S::W;
    V s00{}, s01{}, s02{}, s03{}, s10{}, s11{}, s12{}, s13{};
    V s20{}, s21{}, s22{}, s23{}, s30{}, s31{}, s32{}, s33{};
    for (int64_t c = 0; c < cols; ++c) {
        const T* a = AT + c * rows;
        const V a0 = S::load(a), a1 = S::load(a + W), a2 = S::load(a + 2 * W),
                a3 = S::load(a + 3 * W);
        const V x0 = NC_BROADCAST(V, X[0][c * xs]);
        s00 += a0 * x0;
        s01 += a1 * x0;
        s02 += a2 * x0;
        s03 += a3 * x0;
        if constexpr (NT >= 2) {
            const V x1 = NC_BROADCAST(V, X[1][c * xs]);
            s10 += a0 * x1;
            s11 += a1 * x1;
            s12 += a2 * x1;
            s13 += a3 * x1;
        }
        if constexpr (NT == 4) {
            const V x2 = NC_BROADCAST(V, X[2][c * xs]);
            s20 += a0 * x2;
            s21 += a1 * x2;
            s22 += a2 * x2;
            s23 += a3 * x2;
            const V x3 = NC_BROADCAST(V, X[3][c * xs]);
            s30 += a0 * x3;
            s31 += a1 * x3;
            s32 += a2 * x3;
            s33 += a3 * x3;
        }
    }
    columns_store4<T, B, YC>(Y[0], I ? I[0] : nullptr, r, ys, is, s00, s01, s02, s03);
    if constexpr (NT >= 2)
        columns_store4<T, B, YC>(Y[1], I ? I[1] : nullptr, r, ys, is, s10, s11, s12, s13);
    if constexpr (NT == 4) {
        columns_store4<T, B, YC>(Y[2], I ? I[2] : nullptr, r, ys, is, s20, s21, s22, s23);
        columns_store4<T, B, YC>(Y[3], I ? I[3] : nullptr, r, ys, is, s30, s31, s32, s33);
    }
}

// Rows [r, r1) of a columns-kernel block, fewer than a tile's 4W, for every
// trial: whole tiles (NT trials) into buffers that start at -0 (-0 + s == s
// for every s), then each row's sum added to I or Y as add_to_y would.
template <typename T, int B>
NC_INLINE void columns_tail_tiles(const T* AT, int64_t rows, int64_t cols, const T* const* X,
                                  int64_t xs, T* const* Y, int64_t ys, const T* const* I,
                                  int64_t is, int n_trials, int64_t r, int64_t r1) {
    constexpr int W = Simd<T, B>::W, NT = B == 64 ? 4 : 2;
    alignas(64) T sums[NT][4 * W];
    T* S[NT];
    for (int u = 0; u < NT; ++u) S[u] = sums[u];
    const int64_t n = r1 - r;
    for (int t = 0; t < n_trials; t += NT) {
        const int nt = std::min(NT, n_trials - t);
        for (int u = 0; u < nt; ++u) std::fill(sums[u], sums[u] + 4 * W, T(-0.0));
        if (nt == NT)
            columns_tile4<T, B, NT, true>(AT + r, rows, cols, X + t, xs, S, 0, 1, nullptr, 0);
        else if (NT == 4 && nt >= 2)
            columns_tile4<T, B, 2, true>(AT + r, rows, cols, X + t, xs, S, 0, 1, nullptr, 0);
        if (nt == 1 || nt == 3)
            columns_tile4<T, B, 1, true>(AT + r, rows, cols, X + t + nt - 1, xs, S + nt - 1, 0,
                                         1, nullptr, 0);
        for (int u = 0; u < nt; ++u) {
            T* y = Y[t + u] + r * ys;
            if (I) {
                const T* i0 = I[t + u] + r * is;
                for (int64_t i = 0; i < n; ++i) y[i * ys] = i0[i * is] + sums[u][i];
            } else {
                for (int64_t i = 0; i < n; ++i) y[i * ys] += sums[u][i];
            }
        }
    }
}

// columns_tail_tiles at AVX-512's width, a function of its own: inlined, it
// made the columns kernel of blocks without such a tail slower (10 rows x 8
// columns at minibatch 32: 285 -> 365 ns).
template <typename T>
NC_TARGET_AVX512 __attribute__((noinline)) void columns_tail_tiles_avx512(
    const T* AT, int64_t rows, int64_t cols, const T* const* X, int64_t xs, T* const* Y,
    int64_t ys, const T* const* I, int64_t is, int n_trials, int64_t r, int64_t r1) {
    columns_tail_tiles<T, 64>(AT, rows, cols, X, xs, Y, ys, I, is, n_trials, r, r1);
}

// Rows [r0, r1) of a columns-kernel block (AT is A^T, cols x rows) for every
// trial.  Two trials at a time, tiles of 4 vectors of rows (eight independent
// sums keep the FMA units busy), in row order: each trial's Y is one
// sequential stream.  (Tile by tile for all trials was slower: Y of 32 trials,
// far apart, is 32 streams and pages at once.)  Then single vectors, the last
// one partly used.
template <typename T, int B, bool YC>
NC_INLINE void columns_kernel(const T* AT, int64_t rows, int64_t cols, const T* const* X,
                              int64_t xs, T* const* Y, int64_t ys, const T* const* I, int64_t is,
                              int n_trials, int64_t r0, int64_t r1) {
    using S = Simd<T, B>;
    using V = typename S::V;
    constexpr int W = S::W;
    const int64_t r4 = r0 + (r1 - r0) / (4 * W) * (4 * W);
    // trial u's I at row r (I: per-trial pointers, or null: add to Y)
    auto init = [&](int u, int64_t r) -> const T* { return I ? I[u] + r * is : nullptr; };
    int t = 0;
    if constexpr (B == 64)  // AVX-512: four trials at a time (16 sums)
        for (; t + 4 <= n_trials; t += 4)
            for (int64_t r = r0; r < r4; r += 4 * W)
                columns_tile4<T, B, 4, YC>(AT + r, rows, cols, X + t, xs, Y + t, r, ys,
                                           I ? I + t : nullptr, is);
    for (; t + 2 <= n_trials; t += 2)
        for (int64_t r = r0; r < r4; r += 4 * W)
            columns_tile4<T, B, 2, YC>(AT + r, rows, cols, X + t, xs, Y + t, r, ys,
                                       I ? I + t : nullptr, is);
    if (t < n_trials)
        for (int64_t r = r0; r < r4; r += 4 * W)
            columns_tile4<T, B, 1, YC>(AT + r, rows, cols, X + t, xs, Y + t, r, ys,
                                       I ? I + t : nullptr, is);
    // The last rows: more than a vector of them in tiles whose sums go to a
    // buffer first (their own sums in trials' tiles, not one vector's chain
    // of dependent multiply-adds per trial); else a vector at a time.  The
    // tiles and the vectors read past r1: lanes of the next columns, or the
    // padding after the packed A^T (kPackPad); discarded.
    if constexpr (B == 64) {
        if (r1 - r4 > W) {
            columns_tail_tiles_avx512<T>(AT, rows, cols, X, xs, Y, ys, I, is, n_trials, r4, r1);
            return;
        }
    }
    for (int64_t r = r4; r < r1; r += W) {
        const int64_t n = std::min<int64_t>(W, r1 - r);
        for (int u = 0; u < n_trials; ++u) {
            V acc{};
            for (int64_t c = 0; c < cols; ++c)
                acc += S::load(AT + c * rows + r) * NC_BROADCAST(V, X[u][c * xs]);
            if (n == W) {
                add_to_y<T, B, YC>(Y[u] + r * ys, ys, init(u, r), is, acc);
            } else if (const T* Iu = init(u, r)) {
                for (int64_t i = 0; i < n; ++i) Y[u][(r + i) * ys] = Iu[i * is] + acc[i];
            } else {
                for (int64_t i = 0; i < n; ++i) Y[u][(r + i) * ys] += acc[i];
            }
        }
    }
}

// Rows [r0, r1) of a columns-kernel block for one trial: Y = Z + A X, Z = I
// (the block starts from I) or Y itself, stride zs; C: Y and Z contiguous.  A
// vector of rows at a time, then row by row, each with the sums of
// columns_kernel (each lane's multiply-adds, in column order).  For blocks of
// one column (encoders of one-dimensional ensembles): the tiles' bookkeeping
// cost them up to twice the time of this loop (blocks of 8-50 rows; with more
// columns the tiles' independent sums win from 2 columns x 400 rows on).
template <typename T, int B, bool C>
NC_INLINE void columns_one_trial(const T* AT, int64_t rows, int64_t cols, const T* X,
                                 int64_t xs, T* Y, int64_t ys, const T* Z, int64_t zs,
                                 int64_t r0, int64_t r1) {
    using S = Simd<T, B>;
    using V = typename S::V;
    constexpr int W = S::W;
    int64_t r = r0;
    for (; r + W <= r1; r += W) {
        V acc{};
        for (int64_t c = 0; c < cols; ++c)
            acc += S::load(AT + c * rows + r) * NC_BROADCAST(V, X[c * xs]);
        if constexpr (C) {
            S::store(Y + r, S::load(Z + r) + acc);
        } else {
            for (int i = 0; i < W; ++i) Y[(r + i) * ys] = Z[(r + i) * zs] + acc[i];
        }
    }
    for (; r < r1; ++r) {
        T acc = 0;
        for (int64_t c = 0; c < cols; ++c) acc += AT[c * rows + r] * X[c * xs];
        Y[r * ys] = Z[r * zs] + acc;
    }
}

}  // namespace dot
}  // namespace nc
