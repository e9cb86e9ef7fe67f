// DotInc as a batched ragged matrix-vector product, and SparseDotInc (CSR).
//
// Y += A @ X for every block of a merged group, every trial.  Each block is a
// strided view: A[r, c] = A0[r*A_rs + c*A_cs], X[c] = X0[c*X_s], Y[r] = Y0[r*Y_s].
//
// Three kernels, chosen per block when the instruction is built:
// - columns: A shared by all trials (never written: encoders, transforms) with
//   at least 8 rows and few columns.  The instruction keeps a packed copy of
//   A^T, and a tile of rows accumulates column by column, vectorised across
//   rows (no horizontal sums), two trials at a time (four, at AVX-512's
//   width, for blocks of 8 columns or more in minibatches); a single trial
//   of a one-column block (encoders of 1-D ensembles) in a plain vector loop.
// - rows: X contiguous, and A rows contiguous (decoders, learned weights) or
//   A shared (then packed row-major): dot products vectorised along the row
//   in AVX2 vectors at most (AVX-512 CPUs give AVX2's sums),
//   eight or four rows at a time sharing X loads; a shared A in minibatches
//   four trials at a time sharing A loads (two rows at a time, or, at
//   AVX-512's width, pairs of rows' AVX2 vectors in one); and the other
//   trials' rows of blocks of fewer than 4 rows four at a time (row batches:
//   decoders of 1-D ensembles).
// - strided: anything else, element by element.
// Blocks of little work share a job (what a split over threads hands out).
// Rows blocks with a shared A of 8 rows or more and many columns (decoders
// of 8-D ensembles and up, weights out of neurons) also keep A^T: when at
// most a quarter of a trial's X is nonzero (spikes), only the columns of the
// nonzero entries are added (sparse_x_kernel; at AVX-512's width at any
// minibatch size: the listing and the multiply-adds both take whole 64-byte
// vectors, and each row's sums are AVX2's).  (With fewer rows the dense
// kernel is as fast as listing the nonzeros.)
// Every row's sum starts from zero and is added to Y once, as np.dot would.
// This file is compiled with FMA contraction on (CMakeLists.txt): summation
// order in products is BLAS's business in Nengo too.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <utility>

#include "parallel.h"
#include "program.h"
#include "simd.h"

namespace nc {
namespace {

// Shapes of shared A packed transposed for the columns kernel.
constexpr int64_t kPackMaxCols = 64, kPackMinRows = 8;
// Elements of padding after the packed copies (more than a vector).
constexpr int64_t kPackPad = 64;
// Shapes of shared A that also get A^T for inputs that are mostly zeros.
constexpr int64_t kSparseMinRows = 8, kSparseMinCols = 32;
// Rows per parallel job.
constexpr int64_t kJobRows = 256;
// Trials of a columns-kernel job whose X and Y pointers are listed at a time.
constexpr int kColumnsTrials = 64;
// Multiply-adds of a job of several whole blocks, at most, all trials together
// (jobs are what a split hands out: minibatches keep a job per block).
constexpr int64_t kBatchWork = 8192;
// Rows kernel blocks of fewer rows than this (less than its tile of four rows)
// run their rows with other blocks' (row batches) where a single trial
// cannot share A's loads with three more.
constexpr int64_t kBatchMaxRows = 4;
// Columns-kernel blocks that run at AVX-512's width, four trials at a time:
// enough multiply-adds per A^T load to be bound by them (encoders of 8-D
// ensembles and up, in minibatches).  Narrower blocks and single trials
// measured slower at 64 bytes (docs/benchmarks.md items 18, 30).
constexpr int64_t kWideMinCols = 8;
// Rows-kernel blocks (shared A) of this many columns or more, four rows or
// more, run their four-trial tiles at AVX-512's width (rows_pairs_tile).
constexpr int64_t kWideMinRowsCols = 64;
constexpr int kWideMinTrials = 4;

enum Kind { kColumns, kRows, kStrided };

struct Block {
    int64_t rows, cols, a, a_rs, a_cs, x, x_s, y, y_s;
    int64_t init, init_s;  // Y starts from I[r * init_s] (init >= 0), else from Y
    Kind kind;
    int64_t packed;  // offset of A's packed copy in `packed` (columns: A^T,
                     // cols x rows; rows: A, rows x cols), or -1: A in the pool
    bool transposed; // the packed copy is A^T
    bool shared;     // A is the same for every trial
    int64_t sparse;  // offset of A^T (cols x round_up(rows, 16)) in `packed`, or -1
    bool finite;     // every element of A is finite (refresh); else no sparse skipping
    bool volatile_a; // A may change between runs without notice (re-packed every run)
};

// Rows [r0, r1) of one block, or several whole small blocks (b1 > b0 + 1):
// one job each would cost more to hand out than to run.
struct Job {
    int64_t b0, b1, r0, r1;
    bool row_batch;  // blocks of few rows and the same shape, rows kernel, A
                     // shared by all trials or by none: their rows four at a
                     // time (rows_of_blocks)
    bool wide;       // a sparse-input block, or kWideMinTrials trials or more and
                     // a columns-kernel block of kWideMinCols columns or more, or
                     // a shared rows-kernel block of kWideMinRowsCols: AVX-512
                     // where the CPU has it
};

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

template <typename T>
struct DotInc : Instr<T> {
    bool splits_by_trial() const override { return true; }
    std::vector<Block> blocks;
    std::vector<Job> jobs;
    std::vector<T> packed;  // A^T of every columns-kernel block
    int64_t work = 0;

    // Copies A of block b into its packed slot (A^T when transposed).
    void pack(const Buffers<T>& buf, const Block& b) {
        const T* A = buf.f.at(b.a, 0);
        T* dst = packed.data() + b.packed;
        const int64_t n_outer = b.transposed ? b.cols : b.rows;
        const int64_t n_inner = b.transposed ? b.rows : b.cols;
        for (int64_t u = 0; u < n_outer; ++u)
            for (int64_t w = 0; w < n_inner; ++w)
                *dst++ = b.transposed ? A[w * b.a_rs + u * b.a_cs] : A[u * b.a_rs + w * b.a_cs];
    }

    // A^T of block b with rows padded (sparse_rows), for sparse_x_kernel;
    // records whether A is finite (0 * inf would be nan: skipping it would hide that).
    void pack_sparse(const Buffers<T>& buf, Block& b) {
        const T* A = buf.f.at(b.a, 0);
        const int64_t pad = sparse_rows(b.rows);
        T* dst = packed.data() + b.sparse;
        b.finite = true;
        for (int64_t c = 0; c < b.cols; ++c)
            for (int64_t r = 0; r < b.rows; ++r) {
                const T v = A[r * b.a_rs + c * b.a_cs];
                b.finite = b.finite && std::isfinite(v);
                dst[c * pad + r] = v;
            }
    }

    // Y = I over the job's rows, in every trial: the kernels below then add
    // the product to it, as they would to a Y that a copy had set.
    static void start_from_init(const Buffers<T>& buf, const Block& b, int64_t r0, int64_t r1) {
        for (int t = 0; t < buf.n_trials; ++t) {
            const T* I = buf.f.at(b.init, t);
            T* Y = buf.f.at(b.y, t);
            for (int64_t r = r0; r < r1; ++r) Y[r * b.y_s] = I[r * b.init_s];
        }
    }

    // A of a rows-kernel block for trial t (its packed copy, or in the pool), and its row stride.
    NC_INLINE const T* rows_a(const Buffers<T>& buf, const Block& b, int t, int64_t* rs) const {
        const bool own = b.packed >= 0;
        *rs = own ? b.cols : b.a_rs;
        return own ? packed.data() + b.packed : buf.f.at(b.a, t);
    }

    // Shared weights may have changed between runs (training, load_params):
    // re-packed when Python says so (shared_changed) and, for a block whose A
    // Python code may write through a view it keeps (not a Nengo-readonly
    // signal), every run.
    void refresh(const Buffers<T>& buf, bool shared_changed) override {
        for (Block& b : blocks) {
            if (!shared_changed && !b.volatile_a) continue;
            if (b.packed >= 0) pack(buf, b);
            if (b.sparse >= 0) pack_sparse(buf, b);
        }
    }

    // Rows [r0, r1) of a shared A for four trials: at AVX-512's width in pairs
    // of AVX2 vectors (B = 64), else rows_kernel_trials.
    template <int B>
    static NC_INLINE void rows_trials(const T* A, int64_t rs, int64_t cols, const T* const* X,
                                      T* const* Y, int64_t ys, int64_t r0, int64_t r1) {
        if constexpr (B == 64)
            rows_kernel_trials_avx512<T>(A, rs, cols, X, Y, ys, r0, r1);
        else
            rows_kernel_trials<T, B>(A, rs, cols, X, Y, ys, r0, r1);
    }

    // Rows [r0, r1) of block b, every trial.
    template <int B>
    NC_INLINE void block_rows(const Buffers<T>& buf, const Block& b, int64_t r0, int64_t r1) const {
        const int n_trials = buf.n_trials;
        // the rows kernels at AVX2's width under AVX-512 too (a Job::wide block
        // of many columns: its four-trial tiles in pairs of AVX2 vectors), so
        // that their sums are AVX2's; sparse_x_kernel at B (lanes are rows)
        constexpr int BR = B > 32 ? 32 : B;
        const bool sparse = b.sparse >= 0 && b.finite;
        // the columns kernel stores I + A X itself; the others add to Y = I
        const bool columns = b.kind == kColumns && !sparse;
        if (b.init >= 0 && !columns) start_from_init(buf, b, r0, r1);
        int t = 0;
        if (sparse) {  // a job per trial, all rows
            const T* AT = packed.data() + b.sparse;
            int64_t rs;
            const T* A = rows_a(buf, b, 0, &rs);
            thread_local std::vector<int32_t> listed;
            if (static_cast<int64_t>(listed.size()) < b.cols + kPackPad)
                listed.resize(b.cols + kPackPad);  // once
            // trials whose X is dense: four at a time through the dense kernel
            const T* DX[4];
            T* DY[4];
            int n_dense = 0;
            for (; t < n_trials; ++t) {
                const T* X = buf.f.at(b.x, t);
                T* Y = buf.f.at(b.y, t);
                if (sparse_x_kernel<T, B>(AT, b.rows, b.cols, X, Y, b.y_s, listed.data()))
                    continue;
                DX[n_dense] = X, DY[n_dense] = Y;
                if (++n_dense == 4) {
                    rows_trials<B>(A, rs, b.cols, DX, DY, b.y_s, 0, b.rows);
                    n_dense = 0;
                }
            }
            for (int i = 0; i < n_dense; ++i)
                rows_kernel<T, BR>(A, rs, b.cols, DX[i], DY[i], b.y_s, 0, b.rows);
            return;
        }
        if (columns && n_trials == 1 && b.cols == 1) {
            const T* AT = packed.data() + b.packed;
            const T* X = buf.f.at(b.x, 0);
            T* Y = buf.f.at(b.y, 0);
            const bool from_init = b.init >= 0;
            const T* Z = from_init ? buf.f.at(b.init, 0) : Y;
            const int64_t zs = from_init ? b.init_s : b.y_s;
            if (b.y_s == 1 && zs == 1)
                columns_one_trial<T, B, true>(AT, b.rows, b.cols, X, b.x_s, Y, 1, Z, 1, r0, r1);
            else
                columns_one_trial<T, B, false>(AT, b.rows, b.cols, X, b.x_s, Y, b.y_s, Z, zs,
                                               r0, r1);
            return;
        }
        if (columns) {
            // all trials: pointers to their X, Y and I (at most kColumnsTrials at a time)
            const T* AT = packed.data() + b.packed;
            const T* X[kColumnsTrials];
            T* Y[kColumnsTrials];
            const T* I[kColumnsTrials];
            const T* const* init = b.init >= 0 ? I : nullptr;
            for (int t0 = 0; t0 < n_trials; t0 += kColumnsTrials) {
                const int nt = std::min(kColumnsTrials, n_trials - t0);
                for (int i = 0; i < nt; ++i) {
                    X[i] = buf.f.at(b.x, t0 + i), Y[i] = buf.f.at(b.y, t0 + i);
                    if (init) I[i] = buf.f.at(b.init, t0 + i);
                }
                if (b.y_s == 1)
                    columns_kernel<T, B, true>(AT, b.rows, b.cols, X, b.x_s, Y, 1, init,
                                               b.init_s, nt, r0, r1);
                else
                    columns_kernel<T, B, false>(AT, b.rows, b.cols, X, b.x_s, Y, b.y_s, init,
                                                b.init_s, nt, r0, r1);
            }
            return;
        }
        if (b.kind == kRows && b.shared) t = rows_four_trials<B>(buf, b, r0, r1);
        for (; t < n_trials; ++t) {
            const T* X = buf.f.at(b.x, t);
            T* Y = buf.f.at(b.y, t);
            if (b.kind == kRows) {
                int64_t rs;
                const T* A = rows_a(buf, b, t, &rs);
                rows_kernel<T, BR>(A, rs, b.cols, X, Y, b.y_s, r0, r1);
            } else {
                const T* A = buf.f.at(b.a, t);
                for (int64_t r = r0; r < r1; ++r) {
                    T acc = 0;
                    for (int64_t c = 0; c < b.cols; ++c)
                        acc += A[r * b.a_rs + c * b.a_cs] * X[c * b.x_s];
                    Y[r * b.y_s] += acc;
                }
            }
        }
    }

    // Rows [r0, r1) of a shared rows-kernel block for the trials in whole
    // fours: four trials at a time share the loads of A (rows_trials).
    // Returns the first trial left.
    template <int B>
    NC_INLINE int rows_four_trials(const Buffers<T>& buf, const Block& b, int64_t r0,
                                   int64_t r1) const {
        int64_t rs;
        const T* A = rows_a(buf, b, 0, &rs);
        int t = 0;
        for (; t + 4 <= buf.n_trials; t += 4) {
            const T* X[4];
            T* Y[4];
            for (int i = 0; i < 4; ++i) X[i] = buf.f.at(b.x, t + i), Y[i] = buf.f.at(b.y, t + i);
            rows_trials<B>(A, rs, b.cols, X, Y, b.y_s, r0, r1);
        }
        return t;
    }

    // A row batch (Job::row_batch): shared A, trials in whole fours as
    // block_rows runs them; the other trials' rows of all the job's blocks
    // four at a time.  The same sums, in the same order, as block by block.
    template <int B>
    NC_INLINE void row_batch(const Buffers<T>& buf, const Job& j) const {
        const int64_t cols = blocks[j.b0].cols;
        int first = 0;  // trials before it ran four at a time
        for (int64_t k = j.b0; k < j.b1; ++k) {
            const Block& b = blocks[k];
            if (b.init >= 0) start_from_init(buf, b, 0, b.rows);
            if (b.shared) first = rows_four_trials<B>(buf, b, 0, b.rows);
        }
        const T* A[4];
        const T* X[4];
        T* Y[4];
        for (int t = first; t < buf.n_trials; ++t) {
            int n = 0;
            for (int64_t k = j.b0; k < j.b1; ++k) {
                const Block& b = blocks[k];
                int64_t rs;
                const T* a = rows_a(buf, b, t, &rs);
                const T* x = buf.f.at(b.x, t);
                T* y = buf.f.at(b.y, t);
                for (int64_t r = 0; r < b.rows; ++r) {
                    A[n] = a + r * rs, X[n] = x, Y[n] = y + r * b.y_s;
                    if (++n == 4) {
                        rows_of_blocks<T, B, 4>(A, X, Y, cols);
                        n = 0;
                    }
                }
            }
            for (int i = 0; i < n; ++i) rows_of_blocks<T, B, 1>(A + i, X + i, Y + i, cols);
        }
    }

    template <int B>
    NC_INLINE void job(const Buffers<T>& buf, const Job& j) const {
        const bool whole = j.b1 > j.b0 + 1;
        for (int64_t k = j.b0; k < j.b1; ++k)
            block_rows<B>(buf, blocks[k], whole ? 0 : j.r0, whole ? blocks[k].rows : j.r1);
    }

    // The OpenMP region stays outside the AVX2 functions (outlined loop bodies
    // would not inherit their target).  Row batches are a function of their
    // own: inlined beside the other kernels, they cost the columns kernel 5-10 %.
    NC_TARGET_AVX2 void job_avx2(const Buffers<T>& buf, const Job& j) const { job<32>(buf, j); }
    NC_TARGET_AVX512 void job_avx512(const Buffers<T>& buf, const Job& j) const {
        job<64>(buf, j);
    }
    NC_TARGET_AVX2 void row_batch_avx2(const Buffers<T>& buf, const Job& j) const {
        row_batch<32>(buf, j);
    }

    void run(const Buffers<T>& buf, const StepInfo&) override {
        const int level = simd_level();
        const bool avx2 = level >= kSimdAvx2, avx512 = level >= kSimdAvx512;
        parallel_for(
            static_cast<int64_t>(jobs.size()), split_ways(work * buf.n_trials),
            [&](int64_t j) {
                const Job& job_j = jobs[j];
                if (job_j.row_batch)
                    avx2 ? row_batch_avx2(buf, job_j) : row_batch<16>(buf, job_j);
                else if (job_j.wide && avx512)
                    job_avx512(buf, job_j);
                else
                    avx2 ? job_avx2(buf, job_j) : job<16>(buf, job_j);
            },
            true);
    }
};

template <typename T>
std::unique_ptr<Instr<T>> make_dot_inc(const InstrSpec& spec, const Buffers<T>& buf) {
    check_same_length(spec, {"rows", "cols", "A", "A_rs", "A_cs", "X", "X_s", "Y", "Y_s"});
    auto op = std::make_unique<DotInc<T>>();
    const auto &rows = spec.int_array("rows"), &cols = spec.int_array("cols");
    const auto &a = spec.int_array("A"), &a_rs = spec.int_array("A_rs"),
               &a_cs = spec.int_array("A_cs");
    const auto &x = spec.int_array("X"), &x_s = spec.int_array("X_s");
    const auto &y = spec.int_array("Y"), &y_s = spec.int_array("Y_s");
    // optional: blocks that start from I instead of adding to Y (fusion.py)
    const bool has_init = spec.ints.count("I") > 0;
    if (has_init) check_same_length(spec, {"rows", "I", "I_s"});
    const bool has_volatile = spec.ints.count("A_volatile") > 0;
    if (has_volatile) check_same_length(spec, {"rows", "A_volatile"});
    int64_t batch_work = -1;  // multiply-adds of the last job, if it takes more small blocks
    for (size_t i = 0; i < rows.size(); ++i) {
        const int64_t nr = rows[i], nc = cols[i];
        if (nr < 0 || nc < 0) throw std::invalid_argument("dot_inc: negative block shape");
        op->work += nr * nc;
        const int64_t init = has_init ? spec.int_array("I")[i] : -1;
        const int64_t init_s = has_init ? spec.int_array("I_s")[i] : 0;
        if (init < -1) throw std::invalid_argument("dot_inc: I must be an address or -1");
        if (init >= 0 && (nr == 0 || nc == 0))
            throw std::invalid_argument("dot_inc: an empty block cannot start from I");
        if (nr == 0 || nc == 0) continue;
        // The corners of each strided view must lie inside the buffer.
        auto last = [](int64_t base, int64_t n, int64_t s) { return base + (n - 1) * s; };
        const int64_t a_r = last(a[i], nr, a_rs[i]) - a[i], a_c = last(a[i], nc, a_cs[i]) - a[i];
        const std::vector<int64_t> corners{a[i], a[i] + a_r, a[i] + a_c, a[i] + a_r + a_c};
        check_addresses(corners, buf.f, spec.kind);
        check_addresses({x[i], last(x[i], nc, x_s[i]), y[i], last(y[i], nr, y_s[i])}, buf.f,
                        spec.kind);
        if (init >= 0) check_addresses({init, last(init, nr, init_s)}, buf.f, spec.kind);
        const bool shared = *std::max_element(corners.begin(), corners.end()) < buf.f.n_shared;
        // optional (absent: every block volatile, the safe choice)
        const bool volatile_a = !has_volatile || spec.int_array("A_volatile")[i] != 0;
        Block b{nr,   nc,     a[i],     a_rs[i], a_cs[i], x[i],  x_s[i], y[i],
                y_s[i], init, init_s, kStrided, -1,    false, false, -1,    false, volatile_a};
        // Keep a copy of shared A in the layout the kernel wants (A^T for
        // columns, contiguous rows for rows); `refresh` re-packs it.
        auto reserve_pack = [&](bool transposed) {
            b.packed = static_cast<int64_t>(op->packed.size());
            b.transposed = transposed;
            op->packed.resize(op->packed.size() + nr * nc);
        };
        if (shared && nc <= kPackMaxCols && nr >= kPackMinRows) {
            b.kind = kColumns;
            reserve_pack(true);
        } else if (x_s[i] == 1 && (shared || a_cs[i] == 1)) {
            b.kind = kRows;
            if (a_cs[i] != 1) reserve_pack(false);
            if (shared && nr >= kSparseMinRows && nc >= kSparseMinCols) {
                b.sparse = static_cast<int64_t>(op->packed.size());
                op->packed.resize(op->packed.size() + nc * sparse_rows(nr), T(0));
            }
        }
        b.shared = shared;
        const int64_t id = static_cast<int64_t>(op->blocks.size());
        op->blocks.push_back(b);
        // A block of little work joins the job before it when that job is of
        // such blocks too (up to kBatchWork in all; a row batch takes only
        // blocks like its first).  Other blocks get jobs of about kJobRows rows
        // (at least 4 K multiply-adds); sparse-input blocks are one job (the
        // nonzeros are listed once for all rows).
        const int64_t trial_work = nr * nc * buf.n_trials;
        if (b.sparse < 0 && trial_work <= kBatchWork) {
            const bool small_rows = b.kind == kRows && nr < kBatchMaxRows;
            if (batch_work >= 0 && batch_work + trial_work <= kBatchWork &&
                op->jobs.back().row_batch == small_rows &&
                (!small_rows || (op->blocks[op->jobs.back().b0].cols == nc &&
                                 op->blocks[op->jobs.back().b0].shared == shared))) {
                op->jobs.back().b1 = id + 1;
                batch_work += trial_work;
            } else {
                op->jobs.push_back({id, id + 1, 0, nr, small_rows, false});
                batch_work = trial_work;
            }
            continue;
        }
        batch_work = -1;
        const int64_t step =
            b.sparse >= 0 ? nr : std::max<int64_t>(kJobRows, (4096 + nc - 1) / nc);
        const bool wide = b.sparse >= 0 ||
                          (buf.n_trials >= kWideMinTrials &&
                           ((b.kind == kColumns && nc >= kWideMinCols) ||
                            (b.kind == kRows && shared && nr >= kBatchMaxRows &&
                             nc >= kWideMinRowsCols)));
        for (int64_t r0 = 0; r0 < nr; r0 += step)
            op->jobs.push_back({id, id + 1, r0, std::min(nr, r0 + step), false, wide});
    }
    // a vector of padding: the columns kernel's last vector of rows may read past A^T
    op->packed.resize(op->packed.size() + kPackPad, T(0));
    op->refresh(buf, true);
    return op;
}

// Y += A @ X with A in CSR form (constant data held by the instruction).
template <typename T>
struct SparseDotInc : Instr<T> {
    bool splits_by_trial() const override { return true; }
    std::vector<int64_t> indptr, indices;
    std::vector<T> data;
    int64_t x = 0, x_s = 1, y = 0, y_s = 1;
    void run(const Buffers<T>& buf, const StepInfo&) override {
        const int64_t nr = static_cast<int64_t>(indptr.size()) - 1;
        for (int t = 0; t < buf.n_trials; ++t) {
            const T* X = buf.f.at(x, t);
            T* Y = buf.f.at(y, t);
            for (int64_t r = 0; r < nr; ++r) {
                T acc = 0;
                for (int64_t k = indptr[r]; k < indptr[r + 1]; ++k)
                    acc += data[k] * X[indices[k] * x_s];
                Y[r * y_s] += acc;
            }
        }
    }
};

template <typename T>
std::unique_ptr<Instr<T>> make_sparse_dot_inc(const InstrSpec& spec, const Buffers<T>& buf) {
    auto op = std::make_unique<SparseDotInc<T>>();
    op->indptr = spec.int_array("indptr");
    op->indices = spec.int_array("indices");
    op->data = to_scalar_vector<T>(spec.float_array("data"));
    op->x = static_cast<int64_t>(spec.scalar("X"));
    op->x_s = static_cast<int64_t>(spec.scalar("X_s"));
    op->y = static_cast<int64_t>(spec.scalar("Y"));
    op->y_s = static_cast<int64_t>(spec.scalar("Y_s"));
    const int64_t n_cols = static_cast<int64_t>(spec.scalar("cols"));
    if (op->indptr.empty() || op->indptr.front() != 0 ||
        op->indptr.back() != static_cast<int64_t>(op->indices.size()) ||
        op->indices.size() != op->data.size())
        throw std::invalid_argument("sparse_dot_inc: malformed CSR arrays");
    for (size_t r = 0; r + 1 < op->indptr.size(); ++r)
        if (op->indptr[r] > op->indptr[r + 1])
            throw std::invalid_argument("sparse_dot_inc: indptr not monotonic");
    for (int64_t c : op->indices)
        if (c < 0 || c >= n_cols) throw std::invalid_argument("sparse_dot_inc: bad column");
    const int64_t nr = static_cast<int64_t>(op->indptr.size()) - 1;
    if (nr > 0 && n_cols > 0)
        check_addresses({op->x, op->x + (n_cols - 1) * op->x_s, op->y,
                         op->y + (nr - 1) * op->y_s},
                        buf.f, spec.kind);
    return op;
}

NC_REGISTER_INSTR("dot_inc", make_dot_inc);
NC_REGISTER_INSTR("sparse_dot_inc", make_sparse_dot_inc);

}  // namespace
}  // namespace nc
