// Loading neuron updates: every neuron model, one thread per (neuron,
// trial) or per trial group (deferring LIF's rare branches), or fused into
// the mat-vec tile that computes their input.
// Included by device_instrs.h, after its shared helpers.
#pragma once

namespace nc {
namespace NC_DEV_NS {

// A mat-vec's epilogue that updates the neuron whose input the tile just wrote.
// With Defer, a dense tile's thread defers LIF's rare branches over its trials.
template <typename T, typename M, bool Defer = false>
struct NeuronEpilogue {
    static constexpr bool kByTrials = true;
    NeuronStep<T, M> step;
    const int64_t* neuron = nullptr;  // per slot of the mat-vec
    NC_HD void operator()(int64_t slot, int t) const { step.element(neuron[slot], t); }
    // A dense tile's thread's N trials of the row: the neuron's parameters once.
    template <int N>
    NC_HD void trials(int64_t slot, int first) const {
        step.template trials<N, Defer>(neuron[slot], first);
    }
};

// Neuron kinds whose update may run inside the mat-vec that writes their input.
template <typename M>
constexpr bool kFusible = std::is_same_v<M, models::LIF> || std::is_same_v<M, models::LIFRate> ||
                          std::is_same_v<M, models::RectifiedLinear> ||
                          std::is_same_v<M, models::SpikingRectifiedLinear>;

template <typename T, typename M>
struct NeuronInstr : DInstr<T> {
    NeuronStep<T, M> k;
    std::vector<int64_t> J;       // host copy of the input addresses
    std::vector<int64_t> outputs;  // host copy of the output and state addresses
    int64_t n_trials = 1;
    int tt = 1;  // trials a thread updates (NC_NEURON_TRIALS)
    bool defer = false;  // its threads defer LIF's rare branches (NC_NEURON_DEFER)
    void launch(Exec& ex, const StepRef<T>&) override {
        switch (tt) {
            case 8: return launch_trials<8>(ex);
            case 4: return launch_trials<4>(ex);
            case 2: return launch_trials<2>(ex);
            default: return ex.for_each(k.n * n_trials, k);
        }
    }
    template <int TT>
    void launch_trials(Exec& ex) const {
        const int64_t threads = k.n * ((n_trials + TT - 1) / TT);
        if constexpr (Deferrable<M>::value)
            if (defer) return ex.for_each(threads, NeuronTrials<T, M, TT, true>{k});
        ex.for_each(threads, NeuronTrials<T, M, TT>{k});
    }
    int neuron_trials() const override { return tt; }
    bool defers_rare() const override { return defer; }
    bool writes(std::vector<int64_t>& out) const override {
        out.insert(out.end(), outputs.begin(), outputs.end());
        return true;
    }
    std::vector<PhasePart> phase_parts(const RunCtrl<T>*) const override {
        return for_each_phases(k, k.n * n_trials);
    }

    // Fused with `dot` when dot's rows write every input J[k] exactly once and
    // nothing else: then each row's tile, having written J[k] for a trial,
    // updates neuron k of that trial (the last write of J before the update,
    // as the instructions are adjacent; the tiles cover every row and trial once).
    // Not when the update writes what dot reads (a recurrent connection from
    // these neurons' outputs): other tiles may still read it.
    typename DInstr<T>::Fused after_dot(Program<T>& prog, const DotInstr<T>& dot) override {
        if constexpr (!kFusible<M>) {
            return {};
        } else {
            if (!prog.fuse_neurons() || static_cast<int64_t>(dot.slot_row.size()) != k.n) return {};
            for (int64_t a : outputs)
                if (dot.reads_any(a)) return {};
            std::unordered_map<int64_t, int64_t> neuron_of;
            for (int64_t i = 0; i < k.n; ++i)
                if (!neuron_of.emplace(J[i], i).second) return {};
            std::vector<int64_t> neuron(dot.slot_row.size());
            std::vector<char> seen(k.n, 0);
            for (size_t s = 0; s < neuron.size(); ++s) {
                auto it = neuron_of.find(dot.slot_output(s));
                if (it == neuron_of.end() || seen[it->second]) return {};
                seen[it->second] = 1;
                neuron[s] = it->second;
            }
            const int64_t* slots = prog.upload(neuron);
            if constexpr (Deferrable<M>::value)
                if (defer) return {dot.with_epilogue(NeuronEpilogue<T, M, true>{k, slots}), {}, {}};
            return {dot.with_epilogue(NeuronEpilogue<T, M>{k, slots}), {}, {}};
        }
    }
};

template <typename T, typename M>
InstrPtr<T> make_neurons(const InstrSpec& spec, Program<T>& prog,
                         std::vector<std::string> states, std::vector<std::string> params) {
    static_assert(M::NS <= kMaxNeuronStates && M::NP <= kMaxNeuronParams, "model too large");
    if (static_cast<int>(states.size()) != M::NS || static_cast<int>(params.size()) != M::NP)
        throw std::logic_error(spec.kind + ": operand names do not match the device model");
    auto in = std::make_unique<NeuronInstr<T, M>>();
    in->n_trials = prog.n_trials();
    in->tt = trials_per_thread(prog.n_trials(), env_knob(knobs::kNeuronTrials));
    in->defer = Deferrable<M>::value && env_knob(knobs::kNeuronDefer) != 0;
    NeuronStep<T, M>& k = in->k;
    k.p = prog.pools();
    const auto& J = in->J = spec.int_array("J");
    k.n = static_cast<int64_t>(J.size());
    k.J = prog.addr(J);
    k.out = prog.addr(spec.int_array("out"));
    for (int j = 0; j < M::NS; ++j) k.state[j] = prog.addr(spec.int_array(states[j]));
    in->outputs = spec.int_array("out");
    for (const auto& name : states) {
        const auto& a = spec.int_array(name);
        in->outputs.insert(in->outputs.end(), a.begin(), a.end());
    }
    std::vector<std::vector<T>> q(M::NP);
    for (int j = 0; j < M::NP; ++j) {
        q[j] = to_scalar_vector<T>(spec.float_array(params[j]));
        k.param[j] = prog.upload(q[j]);
    }
    k.dt = static_cast<T>(prog.dt());
    if constexpr (M::has_aux) {
        // the per-neuron constant, computed on the host exactly as the CPU kernel does
        std::vector<T> aux(k.n);
        T p[M::NP > 0 ? M::NP : 1];
        for (int64_t i = 0; i < k.n; ++i) {
            for (int j = 0; j < M::NP; ++j) p[j] = q[j][i];
            aux[i] = M::template aux<T>(p, k.dt);
        }
        k.aux = prog.upload(aux);
    }
    return in;
}

}  // namespace NC_DEV_NS
}  // namespace nc
