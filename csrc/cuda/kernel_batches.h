// Element-wise batches (time_update, reset, copy, copy_runs, elementwise_inc).
// One kernel family of the device program: device_kernels.h includes it after
// the common definitions (DPools, divide, Addr, RunCtrl); include that header.
#pragma once
#ifndef NC_DEVICE_KERNELS_COMMON
#error "include device_kernels.h, which includes kernel_batches.h"
#endif

namespace nc {
namespace NC_DEV_NS {

// --- element-wise batches: time_update, reset, copy, copy_runs, elementwise_inc ---
//
// A batch is a list of items, one per written address w[u] (unique within the
// batch), each with a list of terms (CSR: terms term0[u] .. term0[u+1]):
//   SET:  *w = last term          INC:  *w = *w + term + term ...  (in order)
//   SUM:  *w = term + term ...    (a SET followed by INCs of the same address,
//         merged from consecutive instructions: the same additions in order)
//   TIME: step = ++*i_pool[ta];  *w = step * dt
// A term is a constant, a value *ta, or a product *ta * *tb; flags on its
// kind add a zero to the first operand (kZeroA: (0 + *ta) * *tb) or to the
// term (kZeroOut: 0 + term), as when an earlier instruction reset a value and
// incremented it once (HostBatch::forward passes such values on; 0 + x is
// x but for the sign of a zero).  No item reads an
// address another item of the batch writes, so items run in parallel.  When an
// instruction alone breaks that (a copy whose sources overlap its
// destinations), it runs as a gather of all terms into scratch, then a scatter.
enum BatchMode : int32_t { kSet = 0, kInc = 1, kTime = 2, kSum = 3 };
enum TermKind : int32_t { kConst = 0, kValue = 1, kProduct = 2, kStep = 3 };
constexpr int32_t kTermBase = 15, kZeroA = 16, kZeroOut = 32;  // kind = base | flags

template <typename T>
struct BatchArrays {
    int64_t n = 0;        // items
    int64_t n_terms = 0;  // terms
    const int64_t* w = nullptr;
    const int32_t* mode = nullptr;
    const int64_t* term0 = nullptr;  // n + 1
    const int32_t* kind = nullptr;
    const int64_t* ta = nullptr;
    const int64_t* tb = nullptr;
    const T* value = nullptr;
};

template <typename T>
NC_HD T batch_term(const DPools<T>& p, const BatchArrays<T>& b, int64_t j, int t) {
    const int32_t k = b.kind[j];
    T v;
    switch (k & kTermBase) {
        case kConst: v = b.value[j]; break;
        case kValue:
        case kProduct: {
            v = *p.fat(b.ta[j], t);
            if (k & kZeroA) v = T(0) + v;
            if ((k & kTermBase) == kProduct) v = v * *p.fat(b.tb[j], t);
            break;
        }
        default: return T(0);
    }
    return (k & kZeroOut) ? T(0) + v : v;
}

// One launch over (item, trial); scratch == nullptr: terms are evaluated here,
// else read from scratch[t * n_terms + j] (filled by BatchGather).
template <typename T>
struct BatchApply {
    DPools<T> p;
    BatchArrays<T> b;
    const T* scratch = nullptr;
    double dt = 0.001;
    NC_HD void operator()(int64_t idx) const {
        const QuotRem qr = divide(idx, b.n);
        const int64_t u = qr.rem;
        const int t = static_cast<int>(qr.quot);
        const int64_t j0 = b.term0[u], j1 = b.term0[u + 1];
        T* d = p.fat(b.w[u], t);
        auto term = [&](int64_t j) {
            return scratch ? scratch[static_cast<int64_t>(t) * b.n_terms + j]
                           : batch_term(p, b, j, t);
        };
        if (b.mode[u] == kTime) {
            int64_t* step = p.iat(b.ta[j0], t);
            *step += 1;
            *d = static_cast<T>(static_cast<double>(*step) * dt);
        } else if (b.mode[u] == kSet) {
            if (j1 > j0) *d = term(j1 - 1);
        } else {
            const bool sum = b.mode[u] == kSum;
            T acc = sum ? term(j0) : *d;
            for (int64_t j = sum ? j0 + 1 : j0; j < j1; ++j) acc = acc + term(j);
            *d = acc;
        }
    }
};

template <typename T>
struct BatchGather {
    DPools<T> p;
    BatchArrays<T> b;
    T* scratch = nullptr;
    NC_HD void operator()(int64_t idx) const {
        const QuotRem qr = divide(idx, b.n_terms);
        const int64_t j = qr.rem;
        const int t = static_cast<int>(qr.quot);
        scratch[idx] = b.kind[j] == kStep ? T(0) : batch_term(p, b, j, t);
    }
};

}  // namespace NC_DEV_NS
}  // namespace nc
