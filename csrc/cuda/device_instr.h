// One loaded instruction of the device program: what the loaders
// (device_instrs_*.h) make of a planner instruction and the program
// (device_program.h) launches, batches with its neighbours or fuses with the
// mat-vec before it.
#pragma once
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "host_batch.h"
#include "phases.h"

namespace nc {
namespace NC_DEV_NS {

template <typename T>
class Program;

template <typename T>
struct DotInstr;
template <typename T>
struct ConvDenseInstr;

// One loaded instruction.
template <typename T>
struct DInstr {
    using Launch = std::function<void(Exec&, const StepRef<T>&)>;
    virtual ~DInstr() = default;
    std::string kind;
    // element-wise instructions join batches instead of launching themselves
    bool simple = false;
    bool two_phase = false;  // simple, but must run alone as gather + scatter
    HostBatch<T> batch;
    // callbacks
    bool is_callback = false;
    std::function<void()> fn;
    std::vector<int64_t> f_ranges, i_ranges;

    virtual void launch(Exec&, const StepRef<T>&) {}
    virtual int64_t launches() const { return 1; }
    virtual void set_table(Program<T>&, const std::string& name, std::vector<double>) {
        throw std::invalid_argument(kind + ": this instruction has no table '" + name + "'");
    }
    virtual void check_run(int64_t n_steps) const {}
    // This instruction fused with `dot`, the instruction right before it: one
    // launch that runs the mat-vec and, in its kernel, this instruction where
    // the mat-vec wrote its inputs; then `rest` (null: nothing left), which
    // can run as the phases `rest_parts`.  Empty where this kind cannot follow
    // a mat-vec in its kernel (device_instrs_neurons.h, device_instrs_filters.h).
    struct Fused {
        Launch launch, rest;
        std::vector<PhasePart> rest_parts;
        explicit operator bool() const { return static_cast<bool>(launch); }
    };
    virtual Fused after_dot(Program<T>&, const DotInstr<T>&) { return {}; }
    // Appends the float addresses the instruction writes (in every trial);
    // false where it does not say (then any address may change).
    virtual bool writes(std::vector<int64_t>&) const { return false; }
    // The instruction's launch as phases (phases.h), stepped ones reading
    // `ctrl`; empty where it cannot run as phases.
    virtual std::vector<PhasePart> phase_parts(const RunCtrl<T>* ctrl) const { return {}; }
    // Neuron updates: the trials a thread updates when launched alone (NC_NEURON_TRIALS).
    virtual int neuron_trials() const { return 0; }
    // Neuron updates whose threads of many trials defer LIF's rare branches (NC_NEURON_DEFER).
    virtual bool defers_rare() const { return false; }
};

}  // namespace NC_DEV_NS
}  // namespace nc
