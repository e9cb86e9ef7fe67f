// SparseDotInc: CSR products with constant data.
// One kernel family of the device program: device_kernels.h includes it after
// the common definitions (DPools, divide, Addr, RunCtrl); include that header.
#pragma once
#ifndef NC_DEVICE_KERNELS_COMMON
#error "include device_kernels.h, which includes kernel_sparse_dot.h"
#endif

namespace nc {
namespace NC_DEV_NS {

// --- SparseDotInc (CSR, constant data) ---------------------------------------
template <typename T>
struct SparseDot {
    DPools<T> p;
    int64_t rows = 0;
    const int64_t* indptr = nullptr;
    const int64_t* indices = nullptr;
    const T* data = nullptr;
    int64_t x = 0, x_s = 1, y = 0, y_s = 1;
    NC_HD void operator()(int64_t idx) const {
        const QuotRem qr = divide(idx, rows);
        const int64_t r = qr.rem;
        const int t = static_cast<int>(qr.quot);
        const T* X = p.fat(x, t);
        T acc = 0;
        for (int64_t k = indptr[r]; k < indptr[r + 1]; ++k) acc += data[k] * X[indices[k] * x_s];
        T* Y = p.fat(y, t) + r * y_s;
        *Y += acc;
    }
};

}  // namespace NC_DEV_NS
}  // namespace nc
