// Convolution (Nengo's ConvInc and ConvTransposeInc) as a gather, shared by host
// and device.  Output position o reads, per spatial axis, the kernel taps that
// land inside the input; its (input position, kernel tap) pairs are computed
// from the geometry (`row`), not stored, so a convolution costs no memory per
// pair.  With C_g input channels per group and W laid out (taps, C_g, filters):
//
//   Y[o, f] += sum_{(i, t) in row(o)} sum_{c < C_g} W[t, c, f] X[i, group(f) * C_g + c]
//
// Forward, along an axis of n inputs with kernel k, stride s and padding p
// before the input (nengo_cuda/lowering/conv.py): output r reads input
// i = r s - p + t for the taps t with 0 <= i < n.  Transposed (the adjoint of
// the forward convolution from the output's shape to the input's), output r
// reads input o = (r + p - t) / s for the taps t where that is a whole number
// in [0, m), m the forward output's size.  A row's pairs run over the taps in
// C order of the kernel shape (the last axis fastest): Nengo's order of
// summation.  Each output element sums its terms in that order, then by
// channel, whether one call computes one filter (a device thread) or a whole
// group of filters (the CPU loop), so host and device agree.
#pragma once
#include <cstdint>

#include "../common/host_device.h"

namespace nc {
namespace conv {

constexpr int kMaxAxes = 3;  // spatial axes (TensorFlow's convolutions stop at 3-D)

struct Geometry {
    // Per spatial axis, unused ones 1 row, 1 column, 1 tap, stride 1, pad 0; all
    // below 2^30 and every product below 2^31 (checked where an instruction loads)
    int rows[kMaxAxes] = {1, 1, 1};    // output positions (Y's spatial shape)
    int cols[kMaxAxes] = {1, 1, 1};    // input positions (X's spatial shape)
    int taps[kMaxAxes] = {1, 1, 1};    // kernel size
    int stride[kMaxAxes] = {1, 1, 1};
    int pad[kMaxAxes] = {0, 0, 0};     // the forward convolution's padding before its input
    bool transpose = false;
    // Derived by `finish`: flattened steps of the input position and the tap
    // per step of a tap index along each axis
    int64_t pos_step[kMaxAxes] = {0, 0, 0}, tap_step[kMaxAxes] = {0, 0, 0};
    int64_t col_stride[kMaxAxes] = {0, 0, 0}, tap_stride[kMaxAxes] = {0, 0, 0};
    int64_t x_ps = 0, x_cs = 0;        // X strides: position, channel
    int64_t y_ps = 0, y_cs = 0;        // Y strides: position, filter
    int64_t filters = 0;               // output channels (W's last axis)
    int64_t cg = 0;                    // input channels per group (W's second-last axis)
    int64_t fpg = 0;                   // filters per group

    // Sets the derived fields from the per-axis ones.
    void finish() {
        int64_t cs = 1, ts = 1;
        for (int a = kMaxAxes - 1; a >= 0; --a) {
            col_stride[a] = cs;
            tap_stride[a] = ts;
            // forward: the next tap reads the next input; transposed: the next
            // tap that divides reads the previous input (of the forward output)
            pos_step[a] = transpose ? -cs : cs;
            tap_step[a] = transpose ? int64_t(stride[a]) * ts : ts;
            cs *= cols[a];
            ts *= taps[a];
        }
    }
    NC_HD int64_t out_positions() const { return int64_t(rows[0]) * rows[1] * rows[2]; }
    NC_HD int64_t in_positions() const { return int64_t(cols[0]) * cols[1] * cols[2]; }
    NC_HD int64_t n_taps() const { return int64_t(taps[0]) * taps[1] * taps[2]; }
};

// The pairs of one output position: n[a] taps along axis a (a grid, in C
// order), the first pair's input position and tap, and the geometry's steps.
struct Row {
    int n[kMaxAxes];
    int64_t pos, tap;
    NC_HD int64_t size() const { return int64_t(n[0]) * n[1] * n[2]; }

    // Pair j (0 <= j < size()) in order.
    NC_HD void pair(const Geometry& g, int j, int64_t& p, int64_t& t) const {
        const int j2 = j % n[2], j01 = j / n[2];
        const int j1 = j01 % n[1], j0 = j01 / n[1];
        p = pos + j0 * g.pos_step[0] + j1 * g.pos_step[1] + j2 * g.pos_step[2];
        t = tap + j0 * g.tap_step[0] + j1 * g.tap_step[1] + j2 * g.tap_step[2];
    }

    // f(input position, tap) for each pair in order.
    template <class F>
    NC_HD void for_each(const Geometry& g, F&& f) const {
        for (int j0 = 0; j0 < n[0]; ++j0)
            for (int j1 = 0; j1 < n[1]; ++j1) {
                const int64_t p = pos + j0 * g.pos_step[0] + j1 * g.pos_step[1];
                const int64_t t = tap + j0 * g.tap_step[0] + j1 * g.tap_step[1];
                for (int j2 = 0; j2 < n[2]; ++j2) f(p + j2 * g.pos_step[2], t + j2 * g.tap_step[2]);
            }
    }
};

// The pairs of output position o (0 <= o < g.out_positions()).
NC_HD Row row(const Geometry& g, int64_t o) {
    Row r;
    r.pos = r.tap = 0;
    unsigned rest = static_cast<unsigned>(o);  // below 2^31
    int idx[kMaxAxes];
    NC_UNROLL
    for (int a = kMaxAxes - 1; a >= 0; --a) {
        idx[a] = static_cast<int>(rest % static_cast<unsigned>(g.rows[a]));
        rest /= static_cast<unsigned>(g.rows[a]);
    }
    NC_UNROLL
    for (int a = 0; a < kMaxAxes; ++a) {
        const int k = g.taps[a], s = g.stride[a], p = g.pad[a];
        int t0 = 0, n = 0, col = 0;
        if (!g.transpose) {  // input r s - p + t inside [0, cols)
            const int64_t start = int64_t(idx[a]) * s - p;  // input at tap 0
            const int64_t lo = start < 0 ? -start : 0;
            const int64_t hi = g.cols[a] - start < k ? g.cols[a] - start : k;
            if (hi > lo) {
                t0 = static_cast<int>(lo);
                n = static_cast<int>(hi - lo);
                col = static_cast<int>(start + lo);
            }
        } else {  // forward output (e - t) / s in [0, cols), e = r + p
            const int e = idx[a] + p;
            const int64_t first = int64_t(e) - int64_t(g.cols[a] - 1) * s;  // least tap
            const int lo = first > 0 ? static_cast<int>(first) : 0;
            if (e >= lo) {
                t0 = lo + (e - lo) % s;
                const int hi = e < k - 1 ? e : k - 1;
                if (t0 <= hi) {
                    n = (hi - t0) / s + 1;
                    col = (e - t0) / s;
                }
            }
        }
        r.n[a] = n;
        r.pos += col * g.col_stride[a];
        r.tap += t0 * g.tap_stride[a];
    }
    return r;
}

// acc[f - f0] += the sum above for the output position of row r and filters f
// in [f0, f1), which must lie in one group.  X and W point at element 0 of the
// signals.
template <typename T>
NC_HD void accumulate(const Geometry& g, const Row& r, const T* X, const T* W, int64_t f0,
                      int64_t f1, T* acc) {
    const int64_t c0 = (f0 / g.fpg) * g.cg;
    r.for_each(g, [&](int64_t pos, int64_t tap) {
        const T* x = X + pos * g.x_ps + c0 * g.x_cs;
        const T* w = W + tap * g.cg * g.filters;
        for (int64_t c = 0; c < g.cg; ++c) {
            const T xv = x[c * g.x_cs];
            const T* wc = w + c * g.filters;
            for (int64_t f = f0; f < f1; ++f) acc[f - f0] += wc[f] * xv;
        }
    });
}

// A register tile of `accumulate` for F filters and TT trials: acc[j * TT + tt]
// += the sum above for row r, filter f0 + j (all F in one group) and trial tt,
// whose input starts at X[tt].  Each weight is read once for the TT trials and
// each input value once for the F filters; every output element sums its terms
// in the same order as `accumulate`.
template <typename T, int F, int TT>
NC_HD void accumulate_tile(const Geometry& g, const Row& r, const T* const* X, const T* W,
                           int64_t f0, T* acc) {
    const int64_t c0 = (f0 / g.fpg) * g.cg;
    r.for_each(g, [&](int64_t pos, int64_t tap) {
        const int64_t xo = pos * g.x_ps + c0 * g.x_cs;
        const T* w = W + tap * g.cg * g.filters + f0;
        // rolled on the device: nvcc unrolled it inside the pairs' nested loops
        // to 250 registers a thread (ConvTile<float, 1, 8>; 96 rolled)
        NC_NO_UNROLL
        for (int64_t c = 0; c < g.cg; ++c) {
            T wv[F];
            NC_UNROLL
            for (int j = 0; j < F; ++j) wv[j] = w[c * g.filters + j];
            NC_UNROLL
            for (int tt = 0; tt < TT; ++tt) {
                const T xv = X[tt][xo + c * g.x_cs];
                NC_UNROLL
                for (int j = 0; j < F; ++j) acc[j * TT + tt] += wv[j] * xv;
            }
        }
    });
}

}  // namespace conv
}  // namespace nc
