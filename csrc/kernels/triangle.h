// Triangle synapse (nengo.synapses.Triangle) math for one filtered element and
// one time step, shared by host and device.  Nengo's step, per element j of
// an m-element signal u with a ring X of n taps (rows), state Y and the ring
// position Xi:
//
//     Y[j] += n0 * u[j]
//     Y[j] -= sum_i X[i, j]            (X.sum(axis=0))
//     Xi    = (Xi + 1) % n
//     X[int(Xi), j] = ndiff * u[j]
//     output[j] = Y[j]   (or += Y[j] in inc mode)
//
// repeated in NumPy's order and precision, so float64 and float32 match
// Nengo's step bit for bit:
//
// - `n0 * u` with NumPy float64 coefficients (Nengo's default float dtype)
//   is computed in double, and `Y += ...` then adds in double and rounds to
//   T ("wide"); with float32 coefficients, in T;
// - `X.sum(axis=0)` accumulates in T: row by row from X[0] where m > 1, and
//   as NumPy's pairwise summation where m == 1 (the reduction is then over
//   one contiguous axis: 8 accumulators per block of at most 128 values,
//   blocks summed as a binary tree).
#pragma once
#include <cmath>
#include <cstdint>
#include <limits>

#include "../common/host_device.h"

namespace nc {
namespace triangle {

// NumPy's pairwise sum of a[0], a[s], ..., a[(n - 1) s] for n <= 128.
template <typename T>
NC_HD T pairwise_block(const T* a, int64_t s, int64_t n) {
    if (n < 8) {
        T res = T(0);
        for (int64_t i = 0; i < n; ++i) res += a[i * s];
        return res;
    }
    T r[8];
    for (int j = 0; j < 8; ++j) r[j] = a[j * s];
    int64_t i = 8;
    for (; i < n - n % 8; i += 8)
        for (int j = 0; j < 8; ++j) r[j] += a[(i + j) * s];
    T res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < n; ++i) res += a[i * s];
    return res;
}

// Where NumPy's pairwise sum splits n > 128 values: the first half, rounded
// down to a multiple of 8.
NC_HD int64_t pairwise_split(int64_t n) {
    const int64_t half = n / 2;
    return half - half % 8;
}

// NumPy's pairwise sum of n values: blocks of at most 128 at the leaves of
// a binary tree of splits (pairwise_split), the tree walked with an explicit
// stack (device code should not recurse; 48 levels cover any int64 n).
template <typename T>
NC_HD T pairwise_sum(const T* a, int64_t s, int64_t n) {
    constexpr int kDepth = 48;
    int64_t off[kDepth], len[kDepth];
    T left[kDepth];
    bool has_left[kDepth];
    int d = 0;
    off[0] = 0;
    len[0] = n;
    has_left[0] = false;
    for (;;) {
        if (len[d] > 128) {  // descend into the left part
            off[d + 1] = off[d];
            len[d + 1] = pairwise_split(len[d]);
            has_left[d + 1] = false;
            ++d;
            continue;
        }
        T value = pairwise_block(a + off[d] * s, s, len[d]);
        for (;;) {  // climb: a left part starts its right part, a right part adds up
            if (d == 0) return value;
            --d;
            if (!has_left[d]) {
                has_left[d] = true;
                left[d] = value;
                const int64_t first = pairwise_split(len[d]);
                off[d + 1] = off[d] + first;
                len[d + 1] = len[d] - first;
                has_left[d + 1] = false;
                ++d;
                break;
            }
            value = left[d] + value;
        }
    }
}

// X.sum(axis=0) of column j: x points at X[0, j], rows `m` apart.
template <typename T>
NC_HD T column_sum(const T* x, int64_t n_taps, int64_t m) {
    if (m == 1) return pairwise_sum(x, 1, n_taps);
    T acc = x[0];
    for (int64_t i = 1; i < n_taps; ++i) acc += x[i * m];
    return acc;
}

// The ring position after `Xi = (Xi + 1) % n` (NumPy's remainder: the sign
// of the divisor).  A position that names no row (a user's -1.0000001 in
// float32 rounds to n: Nengo's X[n] raises IndexError) becomes NaN, for the
// run's NaN check to report.
template <typename T>
NC_HD T next_position(T xi, int64_t n_taps) {
    const T r = xi + T(1);
    const T n = static_cast<T>(n_taps);
    T mod = std::fmod(r, n);
    if (mod < T(0)) mod += n;
    else if (mod == T(0)) mod = T(0);  // (+0, as NumPy's: fmod gives -0 for -n)
    if (mod >= n) mod = std::numeric_limits<T>::quiet_NaN();
    return mod;
}

// The row `X[int(Xi)]` names, or -1 where it names none (a NaN position:
// Nengo's int() raises; the kernels leave X as it is, and the run's NaN
// check reports the position).
template <typename T>
NC_HD int64_t row_of(T position, int64_t n_taps) {
    if (!(position >= T(0) && position < static_cast<T>(n_taps))) return -1;
    return static_cast<int64_t>(position);
}

// One element's step: updates y and the ring column x (X[0, j], rows m
// apart), writing ndiff * u into row `next_row` (if >= 0); returns Y[j].
template <typename T>
NC_HD T step(T& y, T* x, int64_t n_taps, int64_t m, double n0, double ndiff, bool wide, T u,
             int64_t next_row) {
    if (wide)
        y = static_cast<T>(static_cast<double>(y) + n0 * static_cast<double>(u));
    else
        y += static_cast<T>(n0) * u;
    y -= column_sum(x, n_taps, m);
    if (next_row >= 0)
        x[next_row * m] = wide ? static_cast<T>(ndiff * static_cast<double>(u))
                               : static_cast<T>(static_cast<T>(ndiff) * u);
    return y;
}

}  // namespace triangle
}  // namespace nc
