// Convolution (Nengo's ConvInc and ConvTransposeInc) as a gather, shared by host
// and device.  The tables come from nengo_cuda/lowering/conv.py: per output
// position o, the pairs k in [indptr[o], indptr[o + 1]) of an input position
// pos[k] and a kernel tap tap[k].  With C_g input channels per group and W laid
// out (taps, C_g, filters):
//
//   Y[o, f] += sum_k sum_{c < C_g} W[tap[k], c, f] * X[pos[k], group(f) * C_g + c]
//
// Each output element sums its terms in the same order (pairs in table order,
// then channels), whether one call computes one filter (a device thread) or a
// whole group of filters (the CPU loop), so host and device agree.
#pragma once
#include <cstdint>

#include "../common/host_device.h"

namespace nc {
namespace conv {

struct Geometry {
    const int64_t* indptr = nullptr;  // (output positions + 1)
    const int64_t* pos = nullptr;     // input position of each pair
    const int64_t* tap = nullptr;     // kernel tap of each pair
    int64_t x_ps = 0, x_cs = 0;       // X strides: position, channel
    int64_t y_ps = 0, y_cs = 0;       // Y strides: position, filter
    int64_t filters = 0;              // output channels (W's last axis)
    int64_t cg = 0;                   // input channels per group (W's second-last axis)
    int64_t fpg = 0;                  // filters per group
};

// acc[f - f0] += the sum above for output position o and filters f in [f0, f1),
// which must lie in one group.  X and W point at element 0 of the signals.
template <typename T>
NC_HD void accumulate(const Geometry& g, const T* X, const T* W, int64_t o, int64_t f0,
                      int64_t f1, T* acc) {
    const int64_t c0 = (f0 / g.fpg) * g.cg;
    for (int64_t k = g.indptr[o]; k < g.indptr[o + 1]; ++k) {
        const T* x = X + g.pos[k] * g.x_ps + c0 * g.x_cs;
        const T* w = W + g.tap[k] * g.cg * g.filters;
        for (int64_t c = 0; c < g.cg; ++c) {
            const T xv = x[c * g.x_cs];
            const T* wc = w + c * g.filters;
            for (int64_t f = f0; f < f1; ++f) acc[f - f0] += wc[f] * xv;
        }
    }
}

// A register tile of `accumulate` for F filters and TT trials: acc[j * TT + tt]
// += the sum above for output position o, filter f0 + j (all F in one group)
// and trial tt, whose input starts at X[tt].  Each weight is read once for the
// TT trials and each input value once for the F filters; every output element
// sums its terms in the same order as `accumulate`.
template <typename T, int F, int TT>
NC_HD void accumulate_tile(const Geometry& g, const T* const* X, const T* W, int64_t o,
                           int64_t f0, T* acc) {
    const int64_t c0 = (f0 / g.fpg) * g.cg;
    for (int64_t k = g.indptr[o]; k < g.indptr[o + 1]; ++k) {
        const int64_t xo = g.pos[k] * g.x_ps + c0 * g.x_cs;
        const T* w = W + g.tap[k] * g.cg * g.filters + f0;
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
    }
}

}  // namespace conv
}  // namespace nc
