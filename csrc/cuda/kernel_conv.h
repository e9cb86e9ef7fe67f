// ConvInc / ConvTransposeInc: one thread per output element, or register tiles.
// One kernel family of the device program: device_kernels.h includes it after
// the common definitions (DPools, divide, Addr, RunCtrl); include that header.
#pragma once
#ifndef NC_DEVICE_KERNELS_COMMON
#error "include device_kernels.h, which includes kernel_conv.h"
#endif

namespace nc {
namespace NC_DEV_NS {

// --- ConvInc / ConvTransposeInc (csrc/kernels/conv.h) ------------------------
// One thread per (trial, output position, filter); filters vary fastest, so a
// warp reads consecutive weights and shares its input values.
template <typename T>
struct ConvStep {
    DPools<T> p;
    conv::Geometry g;
    int64_t rows = 0, x = 0, y = 0, w = 0;
    bool set = false;  // Y = the sum (a reset fused in), not Y += it
    NC_HD void operator()(int64_t idx) const {
        const QuotRem qr = divide(idx, g.filters), qr2 = divide(qr.quot, rows);
        const int64_t f = qr.rem, o = qr2.rem;
        const int t = static_cast<int>(qr2.quot);
        T acc = 0;
        conv::accumulate(g, conv::row(g, o), p.fat(x, t), p.fat(w, t), f, f + 1, &acc);
        T* Y = p.fat(y, t) + o * g.y_ps + f * g.y_cs;
        *Y = set ? acc : *Y + acc;
    }
};

// With weights shared by all trials: one thread per (trial group of TT, output
// position, group of F filters), filter groups fastest (conv::accumulate_tile:
// a weight serves TT trials, an input value F filters).  Trials past the last
// compute on the last one's input and are not written.
template <typename T, int F, int TT>
struct ConvTile {
    ConvStep<T> k;  // the operands
    int64_t n_fg = 0;
    NC_HD void operator()(int64_t idx) const {
        const DPools<T>& p = k.p;
        const conv::Geometry& g = k.g;
        const QuotRem qr = divide(idx, n_fg), qr2 = divide(qr.quot, k.rows);
        const int64_t fg = qr.rem, o = qr2.rem;
        const int t0 = static_cast<int>(qr2.quot) * TT, last = p.n_trials - 1;
        const T* X[TT];
        T acc[F * TT];
        NC_UNROLL
        for (int tt = 0; tt < TT; ++tt) X[tt] = p.fat(k.x, t0 + tt < last ? t0 + tt : last);
        NC_UNROLL
        for (int i = 0; i < F * TT; ++i) acc[i] = T(0);
        conv::accumulate_tile<T, F, TT>(g, conv::row(g, o), X, p.fat(k.w, 0), fg * F, acc);
        NC_UNROLL
        for (int tt = 0; tt < TT; ++tt) {
            if (t0 + tt > last) break;
            T* Y = p.fat(k.y, t0 + tt) + o * g.y_ps + fg * F * g.y_cs;
            NC_UNROLL
            for (int j = 0; j < F; ++j) {
                T& y = Y[j * g.y_cs];
                y = k.set ? acc[j * TT + tt] : y + acc[j * TT + tt];
            }
        }
    }
};

}  // namespace NC_DEV_NS
}  // namespace nc
