// Learning rules: SimRLS and the outer-product rules (PES, BCM, Oja, Voja).
// One kernel family of the device program: device_kernels.h includes it after
// the common definitions (DPools, divide, Addr, RunCtrl); include that header.
#pragma once
#ifndef NC_DEVICE_KERNELS_COMMON
#error "include device_kernels.h, which includes kernel_learning.h"
#endif

namespace nc {
namespace NC_DEV_NS {

// --- SimRLS (csrc/kernels/learning.h): three launches per step -------------------
// 1. Pr = P r, one thread per (trial, row); 2. the gain, one thread per trial;
// 3. P's rank-one update and delta, one thread per (trial, element).
template <typename T>
struct RlsViews {
    DPools<T> p;
    int64_t n = 0, m = 0;
    int64_t P = 0, P_rs = 0, P_cs = 0, r = 0, r_s = 0, e = 0, e_s = 0;
    int64_t d = 0, d_rs = 0, d_cs = 0;
    T* pr = nullptr;    // (trials, n) scratch
    T* gain = nullptr;  // (trials) scratch
};

template <typename T>
struct RlsPr {
    RlsViews<T> v;
    NC_HD void operator()(int64_t idx) const {
        const QuotRem qr = divide(idx, v.n);
        const int64_t i = qr.rem;
        const int t = static_cast<int>(qr.quot);
        v.pr[t * v.n + i] =
            learning::rls_dot(v.n, v.p.fat(v.P, t) + i * v.P_rs, v.P_cs, v.p.fat(v.r, t), v.r_s);
    }
};

template <typename T>
struct RlsGain {
    RlsViews<T> v;
    NC_HD void operator()(int64_t t) const {
        const int trial = static_cast<int>(t);
        v.gain[t] = learning::rls_gain(
            learning::rls_dot(v.n, v.p.fat(v.r, trial), v.r_s, v.pr + t * v.n, int64_t(1)));
    }
};

template <typename T>
struct RlsUpdate {
    RlsViews<T> v;
    NC_HD void operator()(int64_t idx) const {
        const int64_t per_trial = v.n * (v.n + v.m);
        const QuotRem qr = divide(idx, per_trial);
        const int t = static_cast<int>(qr.quot);
        const int64_t k = qr.rem;
        const T* pr = v.pr + t * v.n;
        const T g = v.gain[t];
        if (k < v.n * v.n) {
            const int64_t i = k / v.n, j = k % v.n;
            T* x = v.p.fat(v.P, t) + i * v.P_rs + j * v.P_cs;
            *x = learning::rls_p(*x, pr[i], pr[j], g);
        } else {
            const int64_t row = (k - v.n * v.n) / v.n, j = (k - v.n * v.n) % v.n;
            const T e = v.p.fat(v.e, t)[row * v.e_s];
            v.p.fat(v.d, t)[row * v.d_rs + j * v.d_cs] = learning::rls_delta(e, g, pr[j]);
        }
    }
};

// --- learning rules ----------------------------------------------------------
enum Rule : int { kPES = 0, kBCM = 1, kOja = 2, kVoja = 3 };

// One thread per (delta element, trial).  Blocks are found by binary search in
// the prefix sums of their sizes (work0, nb + 1 entries).
template <typename T, int R>
struct Learning {
    DPools<T> p;
    int64_t work = 0, nb = 0;
    const int64_t *rows = nullptr, *cols = nullptr, *work0 = nullptr, *row0 = nullptr;
    const int64_t *delta = nullptr, *delta_rs = nullptr, *delta_cs = nullptr;
    const int64_t *pre = nullptr, *pre_s = nullptr;
    const int64_t *v1 = nullptr, *v1_s = nullptr;  // error (PES), post (others)
    const int64_t *v2 = nullptr, *v2_s = nullptr;  // theta (BCM)
    const int64_t *mat = nullptr, *mat_rs = nullptr, *mat_cs = nullptr;  // weights / encoders
    const int64_t* signal = nullptr;  // Voja learning signal, per block
    const T* alpha = nullptr;         // per block, as the CPU kernel rounds it
    const T* coef = nullptr;          // per block: -beta (Oja)
    const T* scale = nullptr;         // per row of all blocks (Voja)
    bool inc = false;                 // delta += change (nengo_cuda/deferral.py)

    NC_HD void operator()(int64_t idx) const {
        const QuotRem qr = divide(idx, work);
        const int64_t e = qr.rem;
        const int t = static_cast<int>(qr.quot);
        int64_t lo = 0, hi = nb;  // largest b with work0[b] <= e
        while (hi - lo > 1) {
            const int64_t mid = (lo + hi) / 2;
            if (work0[mid] <= e) lo = mid; else hi = mid;
        }
        const int64_t b = lo, rem = e - work0[b], r = rem / cols[b], c = rem % cols[b];
        const T pre_c = p.fat(pre[b], t)[c * pre_s[b]];
        const T v1_r = p.fat(v1[b], t)[r * v1_s[b]];
        T d;
        if (R == kPES) {
            d = learning::outer_delta<T>(learning::pes_row<T>(alpha[b], v1_r), pre_c);
        } else if (R == kBCM) {
            const T theta = p.fat(v2[b], t)[r * v2_s[b]];
            d = learning::outer_delta<T>(learning::bcm_row<T>(alpha[b], v1_r, theta), pre_c);
        } else if (R == kOja) {
            const T w = p.fat(mat[b], t)[r * mat_rs[b] + c * mat_cs[b]];
            d = learning::oja_delta<T>(coef[b], w, learning::oja_row<T>(alpha[b], v1_r), pre_c);
        } else {
            const T enc = p.fat(mat[b], t)[r * mat_rs[b] + c * mat_cs[b]];
            const T gain = learning::voja_gain<T>(alpha[b], *p.fat(signal[b], t));
            d = learning::voja_delta<T>(gain, scale[row0[b] + r], v1_r, pre_c, enc);
        }
        T* y = p.fat(delta[b], t) + r * delta_rs[b] + c * delta_cs[b];
        *y = inc ? *y + d : d;  // (Oja, Voja: y may be the element w / enc read above)
    }
};

}  // namespace NC_DEV_NS
}  // namespace nc
