// Synapses: linear filters and Triangle synapses.
// One kernel family of the device program: device_kernels.h includes it after
// the common definitions (DPools, divide, Addr, RunCtrl); include that header.
#pragma once
#ifndef NC_DEVICE_KERNELS_COMMON
#error "include device_kernels.h, which includes kernel_filters.h"
#endif

namespace nc {
namespace NC_DEV_NS {

// --- linear filters ------------------------------------------------------------
// `serial`: one thread per trial walks every element in order (used when two
// elements write the same output, which must then accumulate in order).
template <typename T>
struct LtiElementwise {
    DPools<T> p;
    int64_t n = 0;
    bool serial = false;
    Addr u, y;
    const int64_t* x = nullptr;
    const int64_t* form = nullptr;
    const int64_t* inc = nullptr;
    const T* a = nullptr;
    const T* b = nullptr;
    const double* a_wide = nullptr;
    const double* b_wide = nullptr;
    NC_HD void element(int64_t k, int t) const {
        const T uk = *p.fat(u[k], t);
        T yk;
        if (form[k] == filters::kNoX)
            yk = filters::no_state(b[k], uk);
        else if (form[k] == filters::kOneX)
            yk = filters::one_state(*p.fat(x[k], t), a[k], b[k], uk);
        else
            yk = filters::one_state_scalar(*p.fat(x[k], t), a_wide[k], b_wide[k], uk);
        filters::write_output(*p.fat(y[k], t), yk, inc[k] != 0);
    }
    NC_HD void operator()(int64_t idx) const {
        if (serial) {
            for (int64_t k = 0; k < n; ++k) element(k, static_cast<int>(idx));
        } else {
            const QuotRem qr = divide(idx, n);
            element(qr.rem, static_cast<int>(qr.quot));
        }
    }
};

template <typename T>
struct LtiStateSpace {
    DPools<T> p;
    int64_t n_elem = 0, max_n = 1;
    bool serial = false;
    // per block
    const int64_t *n = nullptr, *m = nullptr, *x = nullptr, *general = nullptr,
                  *inc = nullptr, *elem0 = nullptr, *a0 = nullptr, *bc0 = nullptr;
    const double *A = nullptr, *B = nullptr, *C = nullptr, *D = nullptr;
    // per element
    const int64_t* block = nullptr;
    Addr u, y;
    double* scratch = nullptr;  // (n_trials * n_elem, max_n), or (n_trials, max_n) when serial
    NC_HD void element(int64_t e, int t, double* tmp) const {
        const int64_t j = block[e], k = e - elem0[j];
        T* xj = p.fat(x[j], t);
        const double yk = filters::state_space(n[j], A + a0[j], B + bc0[j], C + bc0[j], D[j],
                                               general[j] != 0, xj + k, m[j], *p.fat(u[e], t),
                                               tmp);
        filters::write_output(*p.fat(y[e], t), yk, inc[j] != 0);
    }
    NC_HD void operator()(int64_t idx) const {
        if (serial) {
            double* tmp = scratch + idx * max_n;
            for (int64_t e = 0; e < n_elem; ++e) element(e, static_cast<int>(idx), tmp);
        } else {
            const QuotRem qr = divide(idx, n_elem);
            element(qr.rem, static_cast<int>(qr.quot), scratch + idx * max_n);
        }
    }
};

// --- Triangle synapses ------------------------------------------------------------
// Two launches a step: the elements (reading the ring position Xi, which no
// thread writes then), and then each operator's Xi moves on.
template <typename T>
struct TriangleOps {
    DPools<T> p;
    int64_t n_ops = 0, n_elem = 0;
    bool serial = false;  // two elements write one output (inc): one thread per trial
    // per operator
    const int64_t *n = nullptr, *m = nullptr, *x = nullptr, *xi = nullptr, *elem0 = nullptr,
                  *inc = nullptr, *wide = nullptr;
    const double *n0 = nullptr, *ndiff = nullptr;
    // per element
    const int64_t* op = nullptr;
    Addr u, y, state;
};

template <typename T>
struct TriangleTaps {
    TriangleOps<T> o;
    NC_HD void element(int64_t e, int t) const {
        const int64_t j = o.op[e], k = e - o.elem0[j];
        const int64_t row = triangle::row_of(
            triangle::next_position(*o.p.fat(o.xi[j], t), o.n[j]), o.n[j]);
        const T yk = triangle::step(*o.p.fat(o.state[e], t), o.p.fat(o.x[j], t) + k, o.n[j],
                                    o.m[j], o.n0[j], o.ndiff[j], o.wide[j] != 0,
                                    *o.p.fat(o.u[e], t), row);
        filters::write_output(*o.p.fat(o.y[e], t), yk, o.inc[j] != 0);
    }
    NC_HD void operator()(int64_t idx) const {
        if (o.serial) {
            for (int64_t e = 0; e < o.n_elem; ++e) element(e, static_cast<int>(idx));
        } else {
            const QuotRem qr = divide(idx, o.n_elem);
            element(qr.rem, static_cast<int>(qr.quot));
        }
    }
};

template <typename T>
struct TriangleAdvance {
    TriangleOps<T> o;
    NC_HD void operator()(int64_t idx) const {
        const QuotRem qr = divide(idx, o.n_ops);
        T& pos = *o.p.fat(o.xi[qr.rem], static_cast<int>(qr.quot));
        pos = triangle::next_position(pos, o.n[qr.rem]);
    }
};

}  // namespace NC_DEV_NS
}  // namespace nc
