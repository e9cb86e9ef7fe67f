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
    // lif_spiking in stages (NeuronStep::deferred): its parameters from q[kLif]
    // on (tau_rc, tau_ref, min_voltage, spike_height), voltage and refractory
    // time in s[0], s[1]; the input it integrates; what follows the spike.
    static constexpr int kLif = 0;
    template <typename T>
    NC_HD static T lif_input(T J, const T*) { return J; }
    template <typename T>
    NC_HD static void lif_after(T, T*, const T*, T) {}
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
    // adaptive_lif in stages, as LIF's
    static constexpr int kLif = 2;
    template <typename T>
    NC_HD static T lif_input(T J, const T* s) { return J - s[2]; }
    template <typename T>
    NC_HD static void lif_after(T out, T* s, const T* q, T dt) {
        neurons::adapt(s[2], out, dt, q[0], q[1]);
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
struct StochasticSpiking {  // s[0]: the step's uniform number (written back unchanged)
    static constexpr int NS = 1, NP = 2;
    static constexpr bool has_aux = false;
    template <typename T>
    NC_HD static T step(T J, T* s, const T* q, T dt, T) {
        return neurons::stochastic_spikes(J, s[0], dt, q[0], q[1]);
    }
};

}  // namespace models

// Models whose step is LIF's stages (kLif, lif_input, lif_after): their rare
// branches can be deferred (NeuronStep::deferred).
template <typename M, typename = void>
struct Deferrable : std::false_type {};
template <typename M>
struct Deferrable<M, std::void_t<decltype(M::kLif)>> : std::true_type {};

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
    // A neuron's parameters, per-neuron constant and addresses, and TT trials'
    // inputs and states, in registers.
    template <int TT>
    struct Loaded {
        static constexpr int NS = M::NS > 0 ? M::NS : 1;
        int live;  // the trials of the group that exist
        T q[M::NP > 0 ? M::NP : 1];
        T a;
        // where `store` writes the next trial's output and states
        typename DPools<T>::Trials out;
        typename DPools<T>::Trials sp[NS];
        T x[TT], s[TT][NS];
    };
    // Loads neuron k of trials t0 .. t0 + TT - 1, all trials' input and states
    // before any update (TT loads in flight where one trial a thread has one);
    // trials past the last load the last one's values.
    template <int TT>
    NC_HD void load(int64_t k, int t0, Loaded<TT>& v) const {
        v.live = TT == 1 || p.n_trials - t0 >= TT ? TT : p.n_trials - t0;
        for (int j = 0; j < M::NP; ++j) v.q[j] = param[j][k];
        v.a = aux ? aux[k] : T(0);
        auto x = p.fat_trials(J[k], t0, v.live);
        v.out = p.fat_trials(out[k], t0, v.live);
        typename DPools<T>::Trials sp[Loaded<TT>::NS];
        for (int j = 0; j < M::NS; ++j) sp[j] = v.sp[j] = p.fat_trials(state[j][k], t0, v.live);
        NC_UNROLL
        for (int u = 0; u < TT; ++u) {
            v.x[u] = *x;
            for (int j = 0; j < M::NS; ++j) v.s[u][j] = *sp[j];
            if (u + 1 < v.live) {
                x.next();
                for (int j = 0; j < M::NS; ++j) sp[j].next();
            }
        }
    }
    // Writes the next trial's states and output y (trials in order, those that exist).
    template <int TT>
    NC_HD void store(Loaded<TT>& v, int u, T y) const {
        for (int j = 0; j < M::NS; ++j) {
            *v.sp[j] = v.s[u][j];
            v.sp[j].next();
        }
        *v.out = y;
        v.out.next();
    }

    // Neuron k of trials t0 .. t0 + TT - 1 (those that exist): for each, the
    // neuron's update, with its parameters and addresses read once for all.
    // With Defer, a deferrable model's `deferred` (NC_NEURON_DEFER; a template
    // argument, not a flag, so that kernels without it keep their registers).
    template <int TT, bool Defer = false>
    NC_HD void trials(int64_t k, int t0) const {
        if constexpr (Defer && TT > 1 && Deferrable<M>::value) {
            deferred<TT>(k, t0);
        } else {
            Loaded<TT> v;
            load<TT>(k, t0, v);
            NC_UNROLL
            for (int u = 0; u < TT; ++u) {
                if (u >= v.live) break;
                store<TT>(v, u, M::template step<T>(v.x[u], v.s[u], v.q, dt, v.a));
            }
        }
    }

    // `trials` of a model whose step is LIF's stages, with the two rare
    // branches (expm1 of a partial step, the spike time's log1p) deferred: the
    // common stages run for all TT trials, then each rare branch once for each
    // trial that needs it, then the rest.  A warp runs a rare branch as many
    // times as its lane with the most trials needing it (often one or two),
    // where the per-trial order runs it for every trial in which any lane needs
    // it (nearly all, at the chain's rates).  Each trial's arithmetic is
    // lif_spiking's, in its order: the same bits.
    template <int TT>
    NC_HD void deferred(int64_t k, int t0) const {
        static_assert(TT <= 32, "trial bits");
        Loaded<TT> v;
        load<TT>(k, t0, v);
        const unsigned exists = TT == 32 ? ~0u : (1u << v.live) - 1u;
        const T* L = v.q + M::kLif;  // tau_rc, tau_ref, min_voltage, spike_height
        T Jl[TT], delta[TT], decay[TT];
        unsigned partial = 0, spiked = 0;
        NC_UNROLL
        for (int u = 0; u < TT; ++u) {
            Jl[u] = M::lif_input(v.x[u], v.s[u]);
            v.s[u][1] -= dt;
            delta[u] = neurons::lif_delta_t(v.s[u][1], dt);
            if (!neurons::lif_decay_shortcut(delta[u], dt, v.a, decay[u])) partial |= 1u << u;
        }
        // The rare branches' operands and results go through `park`, indexed by
        // the trial at run time: local memory (L1), a load and a store per
        // run, where picking from registers takes a select per trial.
        T park[TT], park2[TT];
        partial &= exists;
        NC_UNROLL
        for (int u = 0; u < TT; ++u) park[u] = delta[u];
        for (unsigned rest = partial; rest; rest &= rest - 1) {
            const int u = lowest_bit(rest);
            park[u] = neurons::lif_partial_decay(park[u], L[0]);
        }
        NC_UNROLL
        for (int u = 0; u < TT; ++u) {
            if (partial >> u & 1u) decay[u] = park[u];
            if (neurons::lif_integrate(Jl[u], v.s[u][0], decay[u], L[2])) spiked |= 1u << u;
            park[u] = Jl[u];
            park2[u] = v.s[u][0];
        }
        spiked &= exists;
        for (unsigned rest = spiked; rest; rest &= rest - 1) {
            const int u = lowest_bit(rest);
            park[u] = neurons::lif_spike_refractory(park[u], park2[u], dt, L[0], L[1]);
        }
        NC_UNROLL
        for (int u = 0; u < TT; ++u)
            if (spiked >> u & 1u) {
                v.s[u][1] = park[u];
                v.s[u][0] = T(0);
            }
        NC_UNROLL
        for (int u = 0; u < TT; ++u) {
            if (u >= v.live) break;
            const T y = spiked >> u & 1u ? L[3] : T(0);
            M::lif_after(y, v.s[u], v.q, dt);
            store<TT>(v, u, y);
        }
    }
};

// One thread per (trial group of TT, neuron), neurons fastest (so a warp's
// loads of one trial are contiguous): NeuronStep::trials.  With many trials
// this reads each neuron's parameters and addresses once per TT trials instead
// of once per trial, and splits the thread index once (NC_NEURON_TRIALS).
template <typename T, typename M, int TT, bool Defer = false>
struct NeuronTrials {
    NeuronStep<T, M> k;
    NC_HD void operator()(int64_t idx) const {
        const QuotRem qr = divide(idx, k.n);
        k.template trials<TT, Defer>(qr.rem, static_cast<int>(qr.quot) * TT);
    }
};

}  // namespace NC_DEV_NS
}  // namespace nc
