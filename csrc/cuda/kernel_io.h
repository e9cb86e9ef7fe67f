// Run-time data in and out: feeds, probes, the step counter's advance.
// One kernel family of the device program: device_kernels.h includes it after
// the common definitions (DPools, divide, Addr, RunCtrl); include that header.
#pragma once
#ifndef NC_DEVICE_KERNELS_COMMON
#error "include device_kernels.h, which includes kernel_io.h"
#endif

namespace nc {
namespace NC_DEV_NS {

// --- feeds and probes -------------------------------------------------------

// Writes run-time data: element e (of feed fid[e], its element k[e]) at addr[e].
template <typename T>
struct FeedApply {
    DPools<T> p;
    StepRef<T> step;
    int64_t n = 0;
    Addr addr;
    const int64_t* fid = nullptr;
    const int64_t* k = nullptr;
    const int64_t* size = nullptr;  // per feed
    NC_HD void operator()(int64_t idx) const {
        const QuotRem qr = divide(idx, n);
        const int64_t e = qr.rem;
        const int t = static_cast<int>(qr.quot);
        const int64_t f = fid[e], s = step.get();
        const T* data = step.ctrl->feed_data[f];
        *p.fat(addr[e], t) = data[(static_cast<int64_t>(t) * step.ctrl->n_steps + s) * size[f] + k[e]];
    }
};

// Copies probed elements into the probe buffers on steps whose sample index >= 0.
template <typename T>
struct ProbeGather {
    DPools<T> p;
    StepRef<T> step;
    int64_t n = 0, n_probes = 0;
    Addr addr;
    const int64_t* pid = nullptr;
    const int64_t* k = nullptr;
    const int64_t* size = nullptr;  // per probe
    NC_HD void operator()(int64_t idx) const {
        const QuotRem qr = divide(idx, n);
        const int64_t e = qr.rem;
        const int t = static_cast<int>(qr.quot);
        const int64_t q = pid[e];
        const int32_t sample = step.ctrl->probe_sample[step.get() * n_probes + q];
        if (sample < 0) return;
        T* out = step.ctrl->probe_out[q];
        const int64_t n_samples = step.ctrl->probe_samples[q];
        out[(static_cast<int64_t>(t) * n_samples + sample) * size[q] + k[e]] = *p.fat(addr[e], t);
    }
};

// ctrl->step_base += steps (one thread, at the end of every graph).
template <typename T>
struct Advance {
    RunCtrl<T>* ctrl = nullptr;
    int64_t steps = 1;
    NC_HD void operator()(int64_t) const { ctrl->step_base += steps; }
};

}  // namespace NC_DEV_NS
}  // namespace nc
