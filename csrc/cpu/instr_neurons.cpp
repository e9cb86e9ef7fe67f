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

namespace nc {
namespace {

// Models may define `aux(params, dt)`: a per-neuron constant derived from the
// parameters and dt (e.g. LIF's full-step decay), computed once, not every step.
template <typename M, typename = void>
struct has_aux : std::false_type {};
template <typename M>
struct has_aux<M, std::void_t<decltype(&M::template aux<float>)>> : std::true_type {};

template <typename T, typename Model>
struct NeuronGroup : Instr<T> {
    static constexpr size_t kStates = Model::states.size();
    static constexpr size_t kParams = Model::params.size();

    std::vector<int64_t> J, out;
    std::array<std::vector<int64_t>, kStates> state;  // state[i][k]: neuron k's address
    std::array<std::vector<T>, kParams> param;        // param[i][k]: neuron k's value

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

    void run(const Buffers<T>& buf, const StepInfo& info) override {
        const int64_t n = this->n();
        const T dt = static_cast<T>(info.dt);
        update_aux(dt);
        const int n_trials = buf.n_trials;
#ifdef _OPENMP
        // a neuron update costs about ten element copies (transcendentals, branches)
#pragma omp parallel for collapse(2) schedule(static) if (8 * n * n_trials >= kParallelMinWork)
#endif
        for (int t = 0; t < n_trials; ++t) {
            for (int64_t k = 0; k < n; ++k) {
                std::array<T*, kStates> s;
                for (size_t j = 0; j < kStates; ++j) s[j] = buf.f.at(state[j][k], t);
                const auto p = params_of(k);
                T* y = buf.f.at(out[k], t);
                const T J_k = *buf.f.at(J[k], t);
                if constexpr (has_aux<Model>::value)
                    *y = Model::step(J_k, s, p, dt, aux[k]);
                else
                    *y = Model::step(J_k, s, p, dt);
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
