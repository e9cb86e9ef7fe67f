// Loading each instruction kind of the CPU registry into device tables
// (included at the end of device_program.h).  The spec was already validated
// by the CPU factory of the same kind; here it only changes form.
#pragma once
#include <algorithm>
#include <climits>
#include <iterator>
#include <type_traits>
#include <unordered_map>
#include <utility>

#include "knobs.h"

namespace nc {
namespace NC_DEV_NS {

template <typename T>
using InstrPtr = std::unique_ptr<DInstr<T>>;

// The least power of two covering nt trials, at most max_tt (rounded down to a
// power of two): the trials one thread or tile takes.
inline int trials_per_thread(int nt, int64_t max_tt) {
    int tt = 1;
    while (tt < nt && tt < max_tt) tt *= 2;
    return tt > max_tt ? tt / 2 : tt;
}

inline bool has_duplicates(std::vector<int64_t> v) {
    std::sort(v.begin(), v.end());
    return std::adjacent_find(v.begin(), v.end()) != v.end();
}

// Operators of m[j] elements each, their elements numbered on: each
// operator's first element and each element's operator.
struct ElementOwners {
    std::vector<int64_t> first, owner;
};
inline ElementOwners element_owners(const std::vector<int64_t>& m) {
    ElementOwners o;
    for (size_t j = 0; j < m.size(); ++j) {
        o.first.push_back(static_cast<int64_t>(o.owner.size()));
        o.owner.insert(o.owner.end(), static_cast<size_t>(m[j]), static_cast<int64_t>(j));
    }
    return o;
}

inline int64_t int_scalar(const InstrSpec& spec, const std::string& name) {
    return static_cast<int64_t>(spec.scalar(name));
}

}  // namespace NC_DEV_NS
}  // namespace nc

// One header per instruction family, in this order (later ones use earlier ones).
#include "device_instrs_basic.h"
#include "device_instrs_dot.h"
#include "device_instrs_conv.h"
#include "device_instrs_neurons.h"
#include "device_instrs_filters.h"
#include "device_instrs_processes.h"
#include "device_instrs_learning.h"

namespace nc {
namespace NC_DEV_NS {

// --- the registry ------------------------------------------------------------------
template <typename T>
std::unique_ptr<DInstr<T>> Program<T>::make(const InstrSpec& spec) {
    const std::string& kind = spec.kind;
    using S = std::vector<std::string>;
    namespace md = models;
    if (kind == "time_update" || kind == "reset" || kind == "copy" || kind == "copy_runs" ||
        kind == "elementwise_inc")
        return make_simple<T>(spec);
    if (kind == "dot_inc") return make_dot<T>(spec, *this);
    if (kind == "sparse_dot_inc") return make_sparse_dot<T>(spec, *this);
    if (kind == "conv_inc") return make_conv<T>(spec, *this);
    if (kind == "lti_elementwise") return make_lti_elementwise<T>(spec, *this);
    if (kind == "lti_state_space") return make_lti_state_space<T>(spec, *this);
    if (kind == "triangle") return make_triangle<T>(spec, *this);
    if (kind == "process_table") return make_process_table<T>(spec, *this);
    if (kind == "learning_pes") return make_learning<T, kPES>(spec, *this);
    if (kind == "learning_bcm") return make_learning<T, kBCM>(spec, *this);
    if (kind == "learning_oja") return make_learning<T, kOja>(spec, *this);
    if (kind == "learning_voja") return make_learning<T, kVoja>(spec, *this);
    if (kind == "learning_rls") return make_rls<T>(spec, *this);
    // neuron types: operand names as in lowering/neurons.py and instr_neurons.cpp
    if (kind == "neurons_rectified_linear")
        return make_neurons<T, md::RectifiedLinear>(spec, *this, S{}, S{"amplitude"});
    if (kind == "neurons_spiking_rectified_linear")
        return make_neurons<T, md::SpikingRectifiedLinear>(spec, *this, S{"voltage"},
                                                           S{"spike_height"});
    if (kind == "neurons_sigmoid")
        return make_neurons<T, md::Sigmoid>(spec, *this, S{}, S{"tau_ref"});
    if (kind == "neurons_tanh") return make_neurons<T, md::Tanh>(spec, *this, S{}, S{"tau_ref"});
    if (kind == "neurons_lif_rate")
        return make_neurons<T, md::LIFRate>(spec, *this, S{},
                                            S{"tau_rc", "tau_ref", "amplitude"});
    if (kind == "neurons_lif")
        return make_neurons<T, md::LIF>(spec, *this, S{"voltage", "refractory_time"},
                                        S{"tau_rc", "tau_ref", "min_voltage", "spike_height"});
    if (kind == "neurons_adaptive_lif_rate")
        return make_neurons<T, md::AdaptiveLIFRate>(
            spec, *this, S{"adaptation"}, S{"tau_n", "inc_n", "tau_rc", "tau_ref", "amplitude"});
    if (kind == "neurons_adaptive_lif")
        return make_neurons<T, md::AdaptiveLIF>(
            spec, *this, S{"voltage", "refractory_time", "adaptation"},
            S{"tau_n", "inc_n", "tau_rc", "tau_ref", "min_voltage", "spike_height"});
    if (kind == "neurons_izhikevich")
        return make_neurons<T, md::Izhikevich>(
            spec, *this, S{"voltage", "recovery"},
            S{"tau_recovery", "coupling", "reset_voltage", "reset_recovery", "spike_height"});
    if (kind == "neurons_regular_spiking")
        return make_neurons<T, md::RegularSpiking>(spec, *this, S{"voltage"}, S{"spike_height"});
    if (kind == "neurons_stochastic_spiking")
        return make_neurons<T, md::StochasticSpiking>(spec, *this, S{"uniform"},
                                                      S{"spike_height", "negative"});
    if (kind == "neurons_leaky_relu")
        return make_neurons<T, md::LeakyReLU>(spec, *this, S{}, S{"amplitude", "negative_slope"});
    if (kind == "neurons_spiking_leaky_relu")
        return make_neurons<T, md::SpikingLeakyReLU>(spec, *this, S{"voltage"},
                                                     S{"spike_height", "negative_slope"});
    if (kind == "neurons_soft_lif_rate")
        return make_neurons<T, md::SoftLIFRate>(spec, *this, S{},
                                                S{"tau_rc", "tau_ref", "amplitude", "sigma"});
    throw std::invalid_argument("the CUDA backend has no kernel for instruction kind '" + kind +
                                "'");
}

}  // namespace NC_DEV_NS
}  // namespace nc
