// SimNeurons groups: one instruction per neuron type over all merged populations.
// Operands are per-neuron addresses; parameters are per-neuron arrays so that
// populations with different parameters merge into one group.
#include "../kernels/neurons.h"
#include "parallel.h"
#include "program.h"

namespace nc {
namespace {

template <typename T>
struct NeuronGroup : Instr<T> {
    std::vector<int64_t> J, out;
    int64_t n() const { return static_cast<int64_t>(J.size()); }
    void load(const InstrSpec& spec, const Buffers<T>& buf) {
        J = spec.int_array("J");
        out = spec.int_array("out");
        check_same_length(spec, {"J", "out"});
        check_addresses(J, buf.f, spec.kind);
        check_addresses(out, buf.f, spec.kind);
    }
    std::vector<int64_t> state(const InstrSpec& spec, const Buffers<T>& buf,
                               const char* name) const {
        const auto& s = spec.int_array(name);
        if (static_cast<int64_t>(s.size()) != n())
            throw std::invalid_argument(spec.kind + ": state '" + name + "' has wrong length");
        check_addresses(s, buf.f, spec.kind);
        return s;
    }
    std::vector<T> param(const InstrSpec& spec, const char* name) const {
        const auto& p = spec.float_array(name);
        if (static_cast<int64_t>(p.size()) != n())
            throw std::invalid_argument(spec.kind + ": parameter '" + name +
                                        "' has wrong length");
        return to_scalar_vector<T>(p);
    }
};

template <typename T>
struct LIFRateGroup : NeuronGroup<T> {
    std::vector<T> tau_rc, tau_ref, amplitude;
    void run(const Buffers<T>& buf, const StepInfo&) override {
        const int64_t n = this->n();
        NC_PARALLEL_FOR(n * buf.n_trials)
        for (int t = 0; t < buf.n_trials; ++t)
            for (int64_t k = 0; k < n; ++k)
                *buf.f.at(this->out[k], t) = neurons::lif_rate<T>(
                    *buf.f.at(this->J[k], t), tau_rc[k], tau_ref[k], amplitude[k]);
    }
};

template <typename T>
std::unique_ptr<Instr<T>> make_lif_rate(const InstrSpec& spec, const Buffers<T>& buf) {
    auto op = std::make_unique<LIFRateGroup<T>>();
    op->load(spec, buf);
    op->tau_rc = op->param(spec, "tau_rc");
    op->tau_ref = op->param(spec, "tau_ref");
    op->amplitude = op->param(spec, "amplitude");
    return op;
}

template <typename T>
struct LIFGroup : NeuronGroup<T> {
    std::vector<int64_t> voltage, refractory_time;
    std::vector<T> tau_rc, tau_ref, min_voltage, amplitude;
    void run(const Buffers<T>& buf, const StepInfo& info) override {
        const int64_t n = this->n();
        const T dt = static_cast<T>(info.dt);
        NC_PARALLEL_FOR(n * buf.n_trials)
        for (int t = 0; t < buf.n_trials; ++t)
            for (int64_t k = 0; k < n; ++k)
                *buf.f.at(this->out[k], t) = neurons::lif_spiking<T>(
                    *buf.f.at(this->J[k], t), *buf.f.at(voltage[k], t),
                    *buf.f.at(refractory_time[k], t), dt, tau_rc[k], tau_ref[k],
                    min_voltage[k], amplitude[k]);
    }
};

template <typename T>
std::unique_ptr<Instr<T>> make_lif(const InstrSpec& spec, const Buffers<T>& buf) {
    auto op = std::make_unique<LIFGroup<T>>();
    op->load(spec, buf);
    op->voltage = op->state(spec, buf, "voltage");
    op->refractory_time = op->state(spec, buf, "refractory_time");
    op->tau_rc = op->param(spec, "tau_rc");
    op->tau_ref = op->param(spec, "tau_ref");
    op->min_voltage = op->param(spec, "min_voltage");
    op->amplitude = op->param(spec, "amplitude");
    return op;
}

NC_REGISTER_INSTR("neurons_lif_rate", make_lif_rate);
NC_REGISTER_INSTR("neurons_lif", make_lif);

}  // namespace
}  // namespace nc
