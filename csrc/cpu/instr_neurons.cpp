// SimNeurons groups: one instruction per neuron type over all merged populations.
// Operands are per-neuron addresses; parameters are per-neuron arrays so that
// populations with different parameters merge into one group.
//
// Each neuron type is a small Model struct (see below): its instruction kind,
// the names of its state operands and parameters (looked up by name in the
// InstrSpec, so their order here only fixes the order `step` receives them in),
// and `step`, which calls the shared math in kernels/neurons.h for one neuron.
// `NeuronGroup<T, Model>` does the loading, checking and looping for all types.
#include <array>
#include <cmath>
#include <type_traits>

#include "../kernels/neurons.h"
#include "parallel.h"
#include "program.h"
#include "segments.h"
#include "simd.h"

namespace nc {
namespace {

// Models may define `aux(params, dt)`: a per-neuron constant derived from the
// parameters and dt (e.g. LIF's full-step decay), computed once, not every step.
template <typename M, typename = void>
struct has_aux : std::false_type {};
template <typename M>
struct has_aux<M, std::void_t<decltype(&M::template aux<float>)>> : std::true_type {};

// Models may define `run_contiguous`: the update of a run of neurons whose
// operands are consecutive in memory (see LIF), bit-identical to `step`.
template <typename M, typename = void>
struct has_contiguous : std::false_type {};
template <typename M>
struct has_contiguous<M, std::void_t<decltype(&M::template run_contiguous<float>)>>
    : std::true_type {};

// Neurons per segment: parallel jobs are (trial, segment) pairs.
constexpr int64_t kNeuronSegment = 2048;
// Neuron updates below which one thread does the whole group.
constexpr int64_t kNeuronParallelMin = 16384;

template <typename T, typename Model>
struct NeuronGroup : Instr<T> {
    static constexpr size_t kStates = Model::states.size();
    static constexpr size_t kParams = Model::params.size();

    std::vector<int64_t> J, out;
    std::array<std::vector<int64_t>, kStates> state;  // state[i][k]: neuron k's address
    std::array<std::vector<T>, kParams> param;        // param[i][k]: neuron k's value
    std::vector<Segment> segments;  // empty: gather every operand by address

    int64_t n() const { return static_cast<int64_t>(J.size()); }

    void load(const InstrSpec& spec, const Buffers<T>& buf) {
        J = spec.int_array("J");
        out = spec.int_array("out");
        check_same_length(spec, {"J", "out"});
        check_addresses(J, buf.f, spec.kind);
        check_addresses(out, buf.f, spec.kind);
        for (size_t i = 0; i < kStates; ++i) {
            state[i] = spec.int_array(Model::states[i]);
            check_length(spec, state[i].size(), "state", Model::states[i]);
            check_addresses(state[i], buf.f, spec.kind);
        }
        for (size_t i = 0; i < kParams; ++i) {
            const auto& p = spec.float_array(Model::params[i]);
            check_length(spec, p.size(), "parameter", Model::params[i]);
            param[i] = to_scalar_vector<T>(p);
        }
        std::vector<const std::vector<int64_t>*> operands{&J, &out};
        for (auto& s : state) operands.push_back(&s);
        segments = contiguous_segments(operands, buf.f.n_shared, kNeuronSegment);
    }

    void check_length(const InstrSpec& spec, size_t size, const char* what,
                      const char* name) const {
        if (static_cast<int64_t>(size) != n())
            throw std::invalid_argument(spec.kind + ": " + what + " '" + name +
                                        "' has wrong length");
    }

    std::vector<T> aux;  // Model::aux per neuron, for aux_dt
    T aux_dt = T(-1);

    void update_aux(T dt) {
        if constexpr (has_aux<Model>::value) {
            if (aux_dt == dt) return;
            aux.resize(n());
            for (int64_t k = 0; k < n(); ++k) aux[k] = Model::template aux<T>(params_of(k), dt);
            aux_dt = dt;
        }
    }

    std::array<T, kParams> params_of(int64_t k) const {
        std::array<T, kParams> p;
        for (size_t j = 0; j < kParams; ++j) p[j] = param[j][k];
        return p;
    }

    T step_one(int64_t k, T J_k, const std::array<T*, kStates>& s, T dt) const {
        if constexpr (has_aux<Model>::value)
            return Model::step(J_k, s, params_of(k), dt, aux[k]);
        else
            return Model::step(J_k, s, params_of(k), dt);
    }

    // Neurons [seg.k0, seg.k0 + seg.len) of trial t, through plain pointers.
    void run_segment(const Buffers<T>& buf, const Segment& seg, int t, T dt) const {
        const int64_t k0 = seg.k0;
        const T* Jp = buf.f.at(J[k0], t);
        T* y = buf.f.at(out[k0], t);
        std::array<T*, kStates> s0;
        for (size_t j = 0; j < kStates; ++j) s0[j] = buf.f.at(state[j][k0], t);
        if constexpr (has_contiguous<Model>::value) {
            std::array<const T*, kParams> p;
            for (size_t j = 0; j < kParams; ++j) p[j] = param[j].data() + k0;
            Model::run_contiguous(seg.len, Jp, y, s0, p, aux.data() + k0, dt);
        } else {
            for (int64_t i = 0; i < seg.len; ++i) {
                std::array<T*, kStates> s;
                for (size_t j = 0; j < kStates; ++j) s[j] = s0[j] + i;
                y[i] = step_one(k0 + i, Jp[i], s, dt);
            }
        }
    }

    void run(const Buffers<T>& buf, const StepInfo& info) override {
        const int64_t n = this->n();
        const T dt = static_cast<T>(info.dt);
        update_aux(dt);
        const int n_trials = buf.n_trials;
        const bool parallel = n * n_trials >= kNeuronParallelMin;
        if (!segments.empty()) {
            const int64_t ns = static_cast<int64_t>(segments.size());
            const int64_t jobs = ns * n_trials;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (parallel)
#endif
            for (int64_t j = 0; j < jobs; ++j)
                run_segment(buf, segments[j % ns], static_cast<int>(j / ns), dt);
            return;
        }
#ifdef _OPENMP
#pragma omp parallel for collapse(2) schedule(static) if (parallel)
#endif
        for (int t = 0; t < n_trials; ++t) {
            for (int64_t k = 0; k < n; ++k) {
                std::array<T*, kStates> s;
                for (size_t j = 0; j < kStates; ++j) s[j] = buf.f.at(state[j][k], t);
                *buf.f.at(out[k], t) = step_one(k, *buf.f.at(J[k], t), s, dt);
            }
        }
    }
};

template <typename T, typename Model>
std::unique_ptr<Instr<T>> make_neuron_group(const InstrSpec& spec, const Buffers<T>& buf) {
    auto op = std::make_unique<NeuronGroup<T, Model>>();
    op->load(spec, buf);
    return op;
}

// Registers Model::kind for float and double.
#define NC_REGISTER_NEURONS(MODEL)                                                   \
    static ::nc::RegisterInstr<float> nc_reg_f_##MODEL(MODEL::kind,                  \
                                                       &make_neuron_group<float, MODEL>); \
    static ::nc::RegisterInstr<double> nc_reg_d_##MODEL(MODEL::kind,                 \
                                                        &make_neuron_group<double, MODEL>)

template <size_t N>
using Names = std::array<const char*, N>;

// The models.  `s` holds pointers to this neuron's state (in `states` order),
// `p` its parameters (in `params` order); `step` returns the output.

// out = amplitude * max(0, J)
struct RectifiedLinear {
    static constexpr const char* kind = "neurons_rectified_linear";
    static constexpr Names<0> states{};
    static constexpr Names<1> params{"amplitude"};
    template <typename T>
    static T step(T J, const std::array<T*, 0>&, const std::array<T, 1>& p, T) {
        return neurons::rectified_linear(J, p[0]);
    }
};

// v += max(J, 0) * dt; out = floor(v) * amplitude / dt; v -= floor(v)
struct SpikingRectifiedLinear {
    static constexpr const char* kind = "neurons_spiking_rectified_linear";
    static constexpr Names<1> states{"voltage"};
    static constexpr Names<1> params{"amplitude"};
    template <typename T>
    static T step(T J, const std::array<T*, 1>& s, const std::array<T, 1>& p, T dt) {
        return neurons::spiking_rectified_linear(J, *s[0], dt, p[0]);
    }
};

// out = (1 / tau_ref) / (1 + exp(-J))
struct Sigmoid {
    static constexpr const char* kind = "neurons_sigmoid";
    static constexpr Names<0> states{};
    static constexpr Names<1> params{"tau_ref"};
    template <typename T>
    static T step(T J, const std::array<T*, 0>&, const std::array<T, 1>& p, T) {
        return neurons::sigmoid(J, p[0]);
    }
};

// out = (1 / tau_ref) * tanh(J)
struct Tanh {
    static constexpr const char* kind = "neurons_tanh";
    static constexpr Names<0> states{};
    static constexpr Names<1> params{"tau_ref"};
    template <typename T>
    static T step(T J, const std::array<T*, 0>&, const std::array<T, 1>& p, T) {
        return neurons::tanh_rate(J, p[0]);
    }
};

// out = amplitude / (tau_ref + tau_rc * log1p(1 / (J - 1))) for J > 1, else 0
struct LIFRate {
    static constexpr const char* kind = "neurons_lif_rate";
    static constexpr Names<0> states{};
    static constexpr Names<3> params{"tau_rc", "tau_ref", "amplitude"};
    template <typename T>
    static T step(T J, const std::array<T*, 0>&, const std::array<T, 3>& p, T) {
        return neurons::lif_rate(J, p[0], p[1], p[2]);
    }
};

// LIF over consecutive neurons, vectorised: a vector of neurons at a time,
// with the very operations of neurons::lif_spiking as branch-free selects.
//
// float64: lanes that need expm1 (leaving the refractory period mid-step) or
// log1p (spiking) are left untouched by the vector pass and then run
// lif_spiking one by one, so every result is bit-identical to the scalar
// kernel's (and to Nengo's).  float32: those lanes too are vectorised, with
// expm1 and log1p computed in double-precision lanes (SimdF32Math, within an
// ulp of libm's float32 functions); the rare lanes outside their domain run
// lif_spiking.
template <typename T, int B>
NC_INLINE void lif_contiguous(int64_t n, const T* J, T* out, T* v, T* ref,
                              const std::array<const T*, 4>& p, const T* full_decay, T dt) {
    using S = Simd<T, B>;
    using V = typename S::V;
    using M = typename S::M;
    constexpr bool vector_math = std::is_same_v<T, float>;
    const T *tau_rc = p[0], *tau_ref = p[1], *min_v = p[2], *amp = p[3];
    auto one_neuron = [&](int64_t k) {
        out[k] = neurons::lif_spiking(J[k], v[k], ref[k], dt, tau_rc[k], tau_ref[k], min_v[k],
                                      amp[k], full_decay[k]);
    };
    const V vdt = S::splat(dt), zero = S::splat(T(0)), one = S::splat(T(1));
    const V minus_zero = S::splat(T(-0.0));  // expm1(-0.0): see neurons::lif_decay
    int64_t k = 0;
    for (; k + S::W <= n; k += S::W) {
        const V vk = S::load(v + k), rk = S::load(ref + k), Jk = S::load(J + k);
        const V r = rk - vdt;
        const V d = vdt - r;  // neurons::lif_delta_t
        V delta_t = d > vdt ? vdt : d;
        delta_t = d < zero ? zero : delta_t;
        const M whole = delta_t == vdt;
        const M partial = ~(whole | (delta_t == zero));
        V decay = whole ? S::load(full_decay + k) : minus_zero;
        M slow{};  // lanes lif_spiking computes afterwards
        if constexpr (vector_math) {
            if (S::any(partial)) {
                const V e = SimdF32Math<B>::expm1(-delta_t / S::load(tau_rc + k), slow);
                decay = partial ? e : decay;
                slow &= partial;
            }
        } else {
            slow = partial;
        }
        V vn = vk - (Jk - vk) * decay;
        const M spiked = vn > one;
        V r_new = r;
        if constexpr (vector_math) {
            if (S::any(spiked)) {
                M bad{};
                const V tau = S::load(tau_rc + k);
                const V l = SimdF32Math<B>::log1p(-(vn - one) / (Jk - one), bad);
                const V t_spike = vdt + tau * l;
                r_new = spiked ? S::load(tau_ref + k) + t_spike : r;
                slow |= bad & spiked;
            }
        } else {
            slow |= spiked;
        }
        const V mv = S::load(min_v + k);
        vn = spiked ? zero : (vn < mv ? mv : vn);
        const V y = spiked ? S::load(amp + k) / vdt : zero;
        S::store(v + k, slow ? vk : vn);
        S::store(ref + k, slow ? rk : r_new);
        S::store(out + k, slow ? S::load(out + k) : y);
        if (S::any(slow))
            for (int i = 0; i < S::W; ++i)
                if (slow[i]) one_neuron(k + i);
    }
    for (; k < n; ++k) one_neuron(k);
}

template <typename T>
NC_TARGET_AVX2 void lif_contiguous_avx2(int64_t n, const T* J, T* out, T* v, T* ref,
                                        const std::array<const T*, 4>& p, const T* full_decay,
                                        T dt) {
    lif_contiguous<T, 32>(n, J, out, v, ref, p, full_decay, dt);
}

// LIF: see neurons::lif_spiking.
struct LIF {
    static constexpr const char* kind = "neurons_lif";
    static constexpr Names<2> states{"voltage", "refractory_time"};
    static constexpr Names<4> params{"tau_rc", "tau_ref", "min_voltage", "amplitude"};
    template <typename T>
    static T aux(const std::array<T, 4>& p, T dt) {
        return neurons::lif_full_step_decay(dt, p[0]);
    }
    template <typename T>
    static T step(T J, const std::array<T*, 2>& s, const std::array<T, 4>& p, T dt, T decay) {
        return neurons::lif_spiking(J, *s[0], *s[1], dt, p[0], p[1], p[2], p[3], decay);
    }
    template <typename T>
    static void run_contiguous(int64_t n, const T* J, T* out, const std::array<T*, 2>& s,
                               const std::array<const T*, 4>& p, const T* full_decay, T dt) {
        if (cpu_has_avx2())
            lif_contiguous_avx2(n, J, out, s[0], s[1], p, full_decay, dt);
        else
            lif_contiguous<T, 16>(n, J, out, s[0], s[1], p, full_decay, dt);
    }
};

// out = LIFRate(J - n); n += (dt / tau_n) * (inc_n * out - n)
struct AdaptiveLIFRate {
    static constexpr const char* kind = "neurons_adaptive_lif_rate";
    static constexpr Names<1> states{"adaptation"};
    static constexpr Names<5> params{"tau_n", "inc_n", "tau_rc", "tau_ref", "amplitude"};
    template <typename T>
    static T step(T J, const std::array<T*, 1>& s, const std::array<T, 5>& p, T dt) {
        return neurons::adaptive_lif_rate(J, *s[0], dt, p[0], p[1], p[2], p[3], p[4]);
    }
};

// out = LIF(J - n) (updating voltage, refractory_time); n += (dt / tau_n) * (inc_n * out - n)
struct AdaptiveLIF {
    static constexpr const char* kind = "neurons_adaptive_lif";
    static constexpr Names<3> states{"voltage", "refractory_time", "adaptation"};
    static constexpr Names<6> params{"tau_n",   "inc_n",       "tau_rc",
                                     "tau_ref", "min_voltage", "amplitude"};
    template <typename T>
    static T aux(const std::array<T, 6>& p, T dt) {
        return neurons::lif_full_step_decay(dt, p[2]);
    }
    template <typename T>
    static T step(T J, const std::array<T*, 3>& s, const std::array<T, 6>& p, T dt, T decay) {
        return neurons::adaptive_lif(J, *s[0], *s[1], *s[2], dt, p[0], p[1], p[2], p[3], p[4],
                                     p[5], decay);
    }
};

// Izhikevich: see neurons::izhikevich.
struct Izhikevich {
    static constexpr const char* kind = "neurons_izhikevich";
    static constexpr Names<2> states{"voltage", "recovery"};
    static constexpr Names<4> params{"tau_recovery", "coupling", "reset_voltage",
                                     "reset_recovery"};
    template <typename T>
    static T step(T J, const std::array<T*, 2>& s, const std::array<T, 4>& p, T dt) {
        return neurons::izhikevich(J, *s[0], *s[1], dt, p[0], p[1], p[2], p[3]);
    }
};

// RegularSpiking's own op (its base type runs as a separate SimNeurons op that
// writes the rate J read here): v += dt * J; out = floor(v) * amplitude / dt;
// v -= floor(v).
struct RegularSpiking {
    static constexpr const char* kind = "neurons_regular_spiking";
    static constexpr Names<1> states{"voltage"};
    static constexpr Names<1> params{"amplitude"};
    template <typename T>
    static T step(T J, const std::array<T*, 1>& s, const std::array<T, 1>& p, T dt) {
        return neurons::regular_spikes(J, *s[0], dt, p[0]);
    }
};

NC_REGISTER_NEURONS(RectifiedLinear);
NC_REGISTER_NEURONS(SpikingRectifiedLinear);
NC_REGISTER_NEURONS(Sigmoid);
NC_REGISTER_NEURONS(Tanh);
NC_REGISTER_NEURONS(LIFRate);
NC_REGISTER_NEURONS(LIF);
NC_REGISTER_NEURONS(AdaptiveLIFRate);
NC_REGISTER_NEURONS(AdaptiveLIF);
NC_REGISTER_NEURONS(Izhikevich);
NC_REGISTER_NEURONS(RegularSpiking);

}  // namespace
}  // namespace nc
