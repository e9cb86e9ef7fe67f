// Kernel bodies of the device program, written once for the GPU and for the
// host emulator (see device_program.h).
//
// Every kernel is a functor with `NC_HD void operator()(int64_t i) const`: the
// work of logical thread i.  The CUDA executor runs it in a grid-stride loop;
// the emulator calls it for every i on the host (in reverse order, or as
// NC_EMU_ORDER says, so that a dependency between threads shows up as a wrong
// result).  The tiled mat-vec
// is written as phases separated by block barriers (kernel_dot.h,
// kernel_dense_dot.h), which both executors run in the same order.
//
// Before including this header a translation unit defines NC_DEV_NS (the
// namespace of its executor, so the GPU and emulator builds never share a
// symbol) and may set NC_DEV_CHECKED to 1 to bounds-check every pool access
// (host emulator only).
#pragma once
#include <cstdint>

#include "../common/host_device.h"
#include "../kernels/conv.h"
#include "../kernels/learning.h"
#include "../kernels/linear_filter.h"
#include "../kernels/neurons.h"
#include "../kernels/process_table.h"
#include "../kernels/triangle.h"

#ifndef NC_DEV_NS
#error "define NC_DEV_NS before including device_kernels.h"
#endif
#ifndef NC_DEV_CHECKED
#define NC_DEV_CHECKED 0
#endif
#if NC_DEV_CHECKED
#include <stdexcept>
#include <string>
#endif

namespace nc {
namespace NC_DEV_NS {

// The device copies of the float and int pools: [shared | trial 0 | trial 1 ...].
template <typename T>
struct DPools {
    T* f = nullptr;
    int64_t f_shared = 0, f_state = 0;
    int64_t* i = nullptr;
    int64_t i_shared = 0, i_state = 0;
    int n_trials = 1;

    NC_HD T* fat(int64_t a, int t) const {
#if NC_DEV_CHECKED
        if (a < 0 || a >= f_shared + f_state || t < 0 || t >= n_trials)
            throw std::out_of_range("emulated device: float address " + std::to_string(a) +
                                    " trial " + std::to_string(t) + " out of range");
#endif
        return f + (a < f_shared ? a : a + static_cast<int64_t>(t) * f_state);
    }
    NC_HD int64_t* iat(int64_t a, int t) const {
#if NC_DEV_CHECKED
        if (a < 0 || a >= i_shared + i_state || t < 0 || t >= n_trials)
            throw std::out_of_range("emulated device: int address " + std::to_string(a) +
                                    " out of range");
#endif
        return i + (a < i_shared ? a : a + static_cast<int64_t>(t) * i_state);
    }

    // Float address a in trials t0 .. t0 + count - 1 (all existing), as a
    // cursor: the element in the current trial, and `next` steps to the next
    // trial by adding the stride (0 for a shared address), so that a thread of
    // many trials resolves the address once and adds per trial (a 64-bit
    // multiply per access is what it saves).
    struct Trials {
        T* p;
        int64_t stride;
#if NC_DEV_CHECKED
        int left;
#endif
        NC_HD T& operator*() const {
#if NC_DEV_CHECKED
            if (left <= 0) throw std::out_of_range("emulated device: past a trial group's last trial");
#endif
            return *p;
        }
        NC_HD void next() {
            p += stride;
#if NC_DEV_CHECKED
            --left;
#endif
        }
    };
    NC_HD Trials fat_trials(int64_t a, int t0, int count) const {
#if NC_DEV_CHECKED
        fat(a, t0 + count - 1);  // (checks the last trial too)
        return {fat(a, t0), a < f_shared ? 0 : f_state, count};
#else
        return {fat(a, t0), a < f_shared ? 0 : f_state};
#endif
    }
};

// idx = quot * n + rem (idx >= 0, n > 0), by a 32-bit division when both fit:
// on a GPU a 64-bit division costs several times more, and most kernels split
// their thread index into (element, trial) this way.
struct QuotRem {
    int64_t quot, rem;
};
NC_HD QuotRem divide(int64_t idx, int64_t n) {
    if (static_cast<uint64_t>(idx) <= 0xffffffffu && static_cast<uint64_t>(n) <= 0xffffffffu) {
        const uint32_t i = static_cast<uint32_t>(idx), m = static_cast<uint32_t>(n), q = i / m;
        return {q, i - q * m};
    }
    return {idx / n, idx % n};
}

// An address array: p[k], or base + k when the addresses are consecutive
// (p == nullptr), which saves reading them every step.
struct Addr {
    const int64_t* p = nullptr;
    int64_t base = 0;
    NC_HD int64_t operator[](int64_t k) const { return p ? p[k] : base + k; }
};

// Per-run values the captured graphs read from device memory, so that a graph
// stays valid from one run to the next (only this block is rewritten).
template <typename T>
struct RunCtrl {
    int64_t step_base = 0;                  // run step of the graph's first step
    int64_t n_steps = 0;                    // steps of this run
    const int32_t* probe_sample = nullptr;  // (n_steps, n_probes): sample index, or -1
    T* const* probe_out = nullptr;          // per probe: (trials, n_samples, size)
    const int64_t* probe_samples = nullptr; // per probe: n_samples
    const T* const* feed_data = nullptr;    // per feed: (trials, n_steps, size)
};

// The run step of step j of a graph: ctrl->step_base + j.
template <typename T>
struct StepRef {
    const RunCtrl<T>* ctrl = nullptr;
    int64_t j = 0;
    NC_HD int64_t get() const { return ctrl->step_base + j; }
};

}  // namespace NC_DEV_NS
}  // namespace nc

// The kernel families, one file each (in this order: the dense mat-vec uses
// the lane-tiled one's parameters, dense convolutions the dense mat-vec's
// stage ring and the convolutions' operands).
#define NC_DEVICE_KERNELS_COMMON 1
#include "kernel_batches.h"
#include "kernel_io.h"
#include "kernel_neurons.h"
#include "kernel_sparse_dot.h"
#include "kernel_conv.h"
#include "kernel_filters.h"
#include "kernel_process_tables.h"
#include "kernel_learning.h"
#include "kernel_dot.h"
#include "kernel_dense_dot.h"
#include "kernel_conv_dense.h"
