// Phases: consecutive small launches run as one launch.
//
// A step has many launches whose work is a few thousand (element, trial)
// pairs or less: element-wise batches (resets, copies, time), feeds, probes,
// tables of processes, synapse filters, the step counter's advance, and in
// small models the mat-vecs (DotRows: a row per thread) and neuron updates.  Each
// costs a launch latency (about 2 us in a CUDA graph) for far less work.  The
// program (device_program.h) runs a run of such consecutive launches, of one
// step or across steps of a graph, as the phases of ONE launch of one thread
// block: the block runs phase 0's elements, a block barrier
// (__syncthreads: the phase's global writes are visible to the whole block),
// phase 1's, and so on.  The order of the effects is the order of the
// launches; only the launch latencies go.
//
// A phase names its functor by kind and points at a copy of it in device
// memory; run_phase switches over the kinds (a closed list, so the kernel has
// no indirect calls and a static stack).
#pragma once
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "device_kernels.h"

namespace nc {
namespace NC_DEV_NS {

enum PhaseKind : int32_t {
    kPhaseBatch = 0,    // BatchApply
    kPhaseGather = 1,   // BatchGather
    kPhaseFeed = 2,     // FeedApply (stepped)
    kPhaseProbe = 3,    // ProbeGather (stepped)
    kPhaseTable = 4,    // ProcessTable (stepped)
    kPhaseLti = 5,      // LtiElementwise
    kPhaseAdvance = 6,  // fn: the RunCtrl; j: steps to add to its step_base
    kPhaseDot = 7,      // DotRows
    kPhaseLif = 8,      // NeuronStep of these neuron models
    kPhaseLifRate = 9,
    kPhaseRelu = 10,
    kPhaseSpikingRelu = 11,
};

// The phase kind of functor type F, or -1 where F cannot run as a phase.
template <template <class> class K, class F>
struct IsKernel : std::false_type {};
template <template <class> class K, class T>
struct IsKernel<K, K<T>> : std::true_type {};

template <class M, class F>
struct IsNeurons : std::false_type {};
template <class M, class T>
struct IsNeurons<M, NeuronStep<T, M>> : std::true_type {};

template <class F>
constexpr int32_t phase_kind() {
    if constexpr (IsKernel<BatchApply, F>::value) return kPhaseBatch;
    else if constexpr (IsKernel<BatchGather, F>::value) return kPhaseGather;
    else if constexpr (IsKernel<FeedApply, F>::value) return kPhaseFeed;
    else if constexpr (IsKernel<ProbeGather, F>::value) return kPhaseProbe;
    else if constexpr (IsKernel<ProcessTable, F>::value) return kPhaseTable;
    else if constexpr (IsKernel<LtiElementwise, F>::value) return kPhaseLti;
    else if constexpr (IsKernel<DotRows, F>::value) return kPhaseDot;
    else if constexpr (IsNeurons<models::LIF, F>::value) return kPhaseLif;
    else if constexpr (IsNeurons<models::LIFRate, F>::value) return kPhaseLifRate;
    else if constexpr (IsNeurons<models::RectifiedLinear, F>::value) return kPhaseRelu;
    else if constexpr (IsNeurons<models::SpikingRectifiedLinear, F>::value)
        return kPhaseSpikingRelu;
    else return -1;
}

// One phase: `n` indices of the functor of kind `kind` at `fn` (device
// memory); stepped kinds run it for step `j` of the graph.
struct PhaseDesc {
    int32_t kind = 0;
    int64_t n = 0;
    const void* fn = nullptr;
    int64_t j = 0;
};

constexpr int kMaxPhases = 32;  // (1 KB of kernel parameters)
struct PhaseList {
    int n = 0;
    PhaseDesc d[kMaxPhases];
};

// A phase in host form: the functor's bytes, uploaded when a configuration is
// built (step_config.h).
struct PhasePart {
    int32_t kind = -1;
    int64_t n = 0;
    int64_t cost = 0;  // n, or more for indices that do more (DotRows): held to NC_PHASE_MAX
    std::vector<unsigned char> fn;
};

template <class F>
PhasePart phase_part(const F& f, int64_t n, int64_t cost = -1) {
    static_assert(phase_kind<F>() >= 0, "not a phase kind");
    static_assert(std::is_trivially_copyable<F>::value, "a phase's functor is copied as bytes");
    PhasePart p;
    p.kind = phase_kind<F>();
    p.n = n;
    p.cost = cost < 0 ? n : cost;
    p.fn.resize(sizeof(F));
    std::memcpy(p.fn.data(), &f, sizeof(F));
    return p;
}

template <class F>
NC_HD void phase_loop(const F& f, int64_t n, int64_t first, int64_t stride) {
    for (int64_t i = first; i < n; i += stride) f(i);
}

template <class F>
NC_HD void stepped_phase_loop(const PhaseDesc& d, int64_t first, int64_t stride) {
    F f = *static_cast<const F*>(d.fn);
    f.step.j = d.j;
    phase_loop(f, d.n, first, stride);
}

template <typename T, class M>
NC_HD void neuron_phase(const PhaseDesc& d, int64_t first, int64_t stride) {
    phase_loop(*static_cast<const NeuronStep<T, M>*>(d.fn), d.n, first, stride);
}

// Runs the indices first, first + stride, ... (< d.n) of phase d.
template <typename T>
NC_HD void run_phase(const PhaseDesc& d, int64_t first, int64_t stride) {
    switch (d.kind) {
        case kPhaseBatch:
            return phase_loop(*static_cast<const BatchApply<T>*>(d.fn), d.n, first, stride);
        case kPhaseGather:
            return phase_loop(*static_cast<const BatchGather<T>*>(d.fn), d.n, first, stride);
        case kPhaseFeed: return stepped_phase_loop<FeedApply<T>>(d, first, stride);
        case kPhaseProbe: return stepped_phase_loop<ProbeGather<T>>(d, first, stride);
        case kPhaseTable: return stepped_phase_loop<ProcessTable<T>>(d, first, stride);
        case kPhaseLti:
            return phase_loop(*static_cast<const LtiElementwise<T>*>(d.fn), d.n, first, stride);
        case kPhaseDot:
            return phase_loop(*static_cast<const DotRows<T>*>(d.fn), d.n, first, stride);
        case kPhaseLif: return neuron_phase<T, models::LIF>(d, first, stride);
        case kPhaseLifRate: return neuron_phase<T, models::LIFRate>(d, first, stride);
        case kPhaseRelu: return neuron_phase<T, models::RectifiedLinear>(d, first, stride);
        case kPhaseSpikingRelu:
            return neuron_phase<T, models::SpikingRectifiedLinear>(d, first, stride);
        case kPhaseAdvance:
            if (first == 0) static_cast<RunCtrl<T>*>(const_cast<void*>(d.fn))->step_base += d.j;
            return;
        default: return;
    }
}

}  // namespace NC_DEV_NS
}  // namespace nc
