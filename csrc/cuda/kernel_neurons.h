// Neuron updates: the device models and NeuronStep.
// One kernel family of the device program: device_kernels.h includes it after
// the common definitions (DPools, divide, Addr, RunCtrl); include that header.
#pragma once
#ifndef NC_DEVICE_KERNELS_COMMON
#error "include device_kernels.h, which includes kernel_neurons.h"
#endif

namespace nc {
namespace NC_DEV_NS {

// --- neurons ----------------------------------------------------------------
//
// Device models mirror csrc/cpu/instr_neurons.cpp: the same operand names, the
// same shared math.  `s` holds the neuron's state values (written back after
// the step), `q` its parameters; `aux` is the per-neuron constant the host
// computed with the same function the CPU kernels use.
namespace models {

struct RectifiedLinear {
    static constexpr int NS = 0, NP = 1;
    static constexpr bool has_aux = false;
    template <typename T>
    NC_HD static T step(T J, T*, const T* q, T, T) {
        return neurons::rectified_linear(J, q[0]);
    }
};
struct SpikingRectifiedLinear {
    static constexpr int NS = 1, NP = 1;
    static constexpr bool has_aux = false;
    template <typename T>
    NC_HD static T step(T J, T* s, const T* q, T dt, T) {
        return neurons::spiking_rectified_linear(J, s[0], dt, q[0]);
    }
};
struct Sigmoid {
    static constexpr int NS = 0, NP = 1;
    static constexpr bool has_aux = false;
    template <typename T>
    NC_HD static T step(T J, T*, const T* q, T, T) {
        return neurons::sigmoid(J, q[0]);
    }
};
struct Tanh {
    static constexpr int NS = 0, NP = 1;
    static constexpr bool has_aux = false;
    template <typename T>
    NC_HD static T step(T J, T*, const T* q, T, T) {
        return neurons::tanh_rate(J, q[0]);
    }
};
struct LIFRate {
    static constexpr int NS = 0, NP = 3;
    static constexpr bool has_aux = false;
    template <typename T>
    NC_HD static T step(T J, T*, const T* q, T, T) {
        return neurons::lif_rate(J, q[0], q[1], q[2]);
    }
};
struct LeakyReLU {
    static constexpr int NS = 0, NP = 2;
    static constexpr bool has_aux = false;
    template <typename T>
    NC_HD static T step(T J, T*, const T* q, T, T) {
        return neurons::leaky_relu(J, q[0], q[1]);
    }
};
struct SpikingLeakyReLU {
    static constexpr int NS = 1, NP = 2;
    static constexpr bool has_aux = false;
    template <typename T>
    NC_HD static T step(T J, T* s, const T* q, T dt, T) {
        return neurons::spiking_leaky_relu(J, s[0], dt, q[0], q[1]);
    }
};
struct SoftLIFRate {
    static constexpr int NS = 0, NP = 4;
    static constexpr bool has_aux = false;
    template <typename T>
    NC_HD static T step(T J, T*, const T* q, T, T) {
        return neurons::soft_lif_rate(J, q[0], q[1], q[2], q[3]);
    }
};
struct LIF {
    static constexpr int NS = 2, NP = 4;
    static constexpr bool has_aux = true;
    template <typename T>
    NC_HD static T aux(const T* q, T dt) {
        return neurons::lif_full_step_decay(dt, q[0]);
    }
    template <typename T>
    NC_HD static T step(T J, T* s, const T* q, T dt, T decay) {
        return neurons::lif_spiking(J, s[0], s[1], dt, q[0], q[1], q[2], q[3], decay);
    }
};
struct AdaptiveLIFRate {
    static constexpr int NS = 1, NP = 5;
    static constexpr bool has_aux = false;
    template <typename T>
    NC_HD static T step(T J, T* s, const T* q, T dt, T) {
        return neurons::adaptive_lif_rate(J, s[0], dt, q[0], q[1], q[2], q[3], q[4]);
    }
};
struct AdaptiveLIF {
    static constexpr int NS = 3, NP = 6;
    static constexpr bool has_aux = true;
    template <typename T>
    NC_HD static T aux(const T* q, T dt) {
        return neurons::lif_full_step_decay(dt, q[2]);
    }
    template <typename T>
    NC_HD static T step(T J, T* s, const T* q, T dt, T decay) {
        return neurons::adaptive_lif(J, s[0], s[1], s[2], dt, q[0], q[1], q[2], q[3], q[4], q[5],
                                     decay);
    }
};
struct Izhikevich {
    static constexpr int NS = 2, NP = 5;
    static constexpr bool has_aux = false;
    template <typename T>
    NC_HD static T step(T J, T* s, const T* q, T dt, T) {
        return neurons::izhikevich(J, s[0], s[1], dt, q[0], q[1], q[2], q[3], q[4]);
    }
};
struct RegularSpiking {
    static constexpr int NS = 1, NP = 1;
    static constexpr bool has_aux = false;
    template <typename T>
    NC_HD static T step(T J, T* s, const T* q, T dt, T) {
        return neurons::regular_spikes(J, s[0], dt, q[0]);
    }
};

}  // namespace models

constexpr int kMaxNeuronStates = 3;
constexpr int kMaxNeuronParams = 6;

// One thread per (neuron, trial): all merged populations of one type.
template <typename T, typename M>
struct NeuronStep {
    DPools<T> p;
    int64_t n = 0;
    Addr J, out;
    Addr state[kMaxNeuronStates];
    const T* param[kMaxNeuronParams] = {};
    const T* aux = nullptr;
    T dt = T(0.001);
    NC_HD void operator()(int64_t idx) const {
        const QuotRem qr = divide(idx, n);
        element(qr.rem, static_cast<int>(qr.quot));
    }
    // Neuron k of trial t (also the epilogue of a fused mat-vec, NeuronEpilogue).
    NC_HD void element(int64_t k, int t) const { trials<1>(k, t); }
    // Neuron k of trials t0 .. t0 + TT - 1 (those that exist): for each, the
    // neuron's update, with its parameters and addresses read once for all,
    // and all TT trials' inputs and states loaded before the first update
    // (TT loads in flight where one trial a thread has one).  Trials past the last load
    // the last one's values and write nothing.
    template <int TT>
    NC_HD void trials(int64_t k, int t0) const {
        constexpr int NS = M::NS > 0 ? M::NS : 1;
        const int last = p.n_trials - 1;
        T q[M::NP > 0 ? M::NP : 1];
        for (int j = 0; j < M::NP; ++j) q[j] = param[j][k];
        const T a = aux ? aux[k] : T(0);
        const int64_t aJ = J[k], aOut = out[k];
        int64_t aS[NS];
        for (int j = 0; j < M::NS; ++j) aS[j] = state[j][k];
        T x[TT], s[TT][NS];
        NC_UNROLL
        for (int u = 0; u < TT; ++u) {
            const int t = TT == 1 || t0 + u < last ? t0 + u : last;  // (one: t0 exists)
            x[u] = *p.fat(aJ, t);
            for (int j = 0; j < M::NS; ++j) s[u][j] = *p.fat(aS[j], t);
        }
        NC_UNROLL
        for (int u = 0; u < TT; ++u) {
            if (TT > 1 && t0 + u > last) break;
            const T y = M::template step<T>(x[u], s[u], q, dt, a);
            for (int j = 0; j < M::NS; ++j) *p.fat(aS[j], t0 + u) = s[u][j];
            *p.fat(aOut, t0 + u) = y;
        }
    }
};

// One thread per (trial group of TT, neuron), neurons fastest (so a warp's
// loads of one trial are contiguous): NeuronStep::trials.  With many trials
// this reads each neuron's parameters and addresses once per TT trials instead
// of once per trial, and splits the thread index once (NC_NEURON_TRIALS).
template <typename T, typename M, int TT>
struct NeuronTrials {
    NeuronStep<T, M> k;
    NC_HD void operator()(int64_t idx) const {
        const QuotRem qr = divide(idx, k.n);
        k.template trials<TT>(qr.rem, static_cast<int>(qr.quot) * TT);
    }
};

}  // namespace NC_DEV_NS
}  // namespace nc
