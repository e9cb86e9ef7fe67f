// Process tables (WhiteSignal, WhiteNoise, PresentInput, Piecewise).
// One kernel family of the device program: device_kernels.h includes it after
// the common definitions (DPools, divide, Addr, RunCtrl); include that header.
#pragma once
#ifndef NC_DEVICE_KERNELS_COMMON
#error "include device_kernels.h, which includes kernel_process_tables.h"
#endif

namespace nc {
namespace NC_DEV_NS {

// --- process tables (WhiteSignal, WhiteNoise, PresentInput, Piecewise) --------
// The table's layout changes between runs; it is read through this block.
struct TableState {
    const double* table = nullptr;  // laid out as processes::table_layout says
    int64_t per_trial = 0;
    int64_t step_rows = 0;
    const double* rows = nullptr;   // indexed operators' rows per run step
};

template <typename T>
struct ProcessTable {
    DPools<T> p;
    StepRef<T> step;
    int64_t n_elem = 0;
    bool serial = false;
    double dt = 0.001;
    int64_t time = 0;
    const TableState* state = nullptr;
    const int64_t* offset = nullptr;  // per op (trial 0's block, or the shared one)
    const int64_t *m = nullptr, *period = nullptr, *inc = nullptr, *shared = nullptr;
    const int64_t* elem0 = nullptr;
    const int64_t* op = nullptr;  // per element
    const int64_t* slot = nullptr;  // per op: its column of state->rows, or -1
    int64_t n_indexed = 0;
    Addr y;
    NC_HD void element(int64_t e, int t) const {
        const int64_t j = op[e], k = e - elem0[j];
        const double now = static_cast<double>(*p.fat(time, t));
        const int64_t row = processes::table_row(period[j], now, dt, step.get(), state->rows,
                                                 n_indexed, slot[j]);
        const int64_t trial_offset = shared[j] ? 0 : t * state->per_trial;
        const double* src = state->table + offset[j] + trial_offset + row * m[j];
        filters::write_output(*p.fat(y[e], t), src[k], inc[j] != 0);
    }
    NC_HD void operator()(int64_t idx) const {
        if (serial) {
            for (int64_t e = 0; e < n_elem; ++e) element(e, static_cast<int>(idx));
        } else {
            const QuotRem qr = divide(idx, n_elem);
            element(qr.rem, static_cast<int>(qr.quot));
        }
    }
};

}  // namespace NC_DEV_NS
}  // namespace nc
