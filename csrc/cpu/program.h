// The native step loop: an ordered list of instructions over flat signal buffers.
//
// Memory layout (one float pool of type T, one int64 pool), for n_trials trials:
//   [ shared (read-only signals, one copy) | trial 0 state | trial 1 state | ... ]
// An address a < n_shared names a shared element; a >= n_shared names element
// a - n_shared of each trial's state block.  resolve(a, t) maps it to memory.
#pragma once
#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace nc {

template <typename E>
struct Pool {
    E* data = nullptr;
    int64_t n_shared = 0;
    int64_t n_state = 0;
    int64_t state_offset = 0;  // trial0 * n_state in a view of trials from trial0
    int64_t size() const { return n_shared + n_state; }
    E* at(int64_t a, int trial) const {
        return data + (a < n_shared ? a : a + state_offset + trial * n_state);
    }
};

template <typename T>
struct Buffers {
    Pool<T> f;
    Pool<int64_t> i;
    int n_trials = 1;
    int trial0 = 0;  // the first trial of this view: per-trial data of instructions
                     // (tables, scratch) belongs to trial trial0 + t

    // Trials [t0, t0 + n) of this view, as trials 0 .. n - 1 (the trial-parallel
    // runner gives each thread such a view).
    Buffers trials(int t0, int n) const {
        Buffers v = *this;
        v.f.state_offset += t0 * f.n_state;
        v.i.state_offset += t0 * i.n_state;
        v.trial0 += t0;
        v.n_trials = n;
        return v;
    }
};

struct StepInfo {
    double dt = 0.001;
    int64_t run_step = 0;  // index of this step within the current run_steps call
};

// Plain-data description of one instruction, as emitted by the Python planner.
struct InstrSpec {
    std::string kind;
    std::map<std::string, std::vector<int64_t>> ints;
    std::map<std::string, std::vector<double>> floats;
    std::map<std::string, double> scalars;

    const std::vector<int64_t>& int_array(const std::string& name) const;
    const std::vector<double>& float_array(const std::string& name) const;
    double scalar(const std::string& name) const;
    double scalar(const std::string& name, double fallback) const;
};

template <typename T>
struct Instr {
    virtual ~Instr() = default;
    virtual void run(const Buffers<T>& buf, const StepInfo& info) = 0;
    // Replaces the data table `name` (values that Python computes between runs,
    // e.g. precomputed random signals; layout is the instruction's own).
    virtual void set_table(const std::string& name, std::vector<double> data) {
        throw std::invalid_argument("this instruction has no table '" + name + "'");
    }
    // Called at the start of every run: an instruction that keeps its own copy of
    // shared buffer contents (e.g. weights packed for a kernel) re-reads it here
    // when `shared_changed` (Python wrote the shared region since the last run:
    // training, load_params, reset; Runner::shared_changed), and its copies of
    // signals Python may write unannounced every time.
    virtual void refresh(const Buffers<T>& buf, bool shared_changed) {}
    // Called at the start of every run, before any thread runs a step: lazy
    // per-instruction setup that depends on dt goes here, not in run().
    virtual void prepare(double dt) {}
    // True when run() on disjoint views of trials (Buffers::trials) may run at
    // the same time in different threads: it writes only the view's trials'
    // memory and indexes its own per-trial data by buf.trial0 + t.  Opt-in.
    virtual bool splits_by_trial() const { return false; }
};

template <typename T>
using InstrFactory = std::unique_ptr<Instr<T>> (*)(const InstrSpec&, const Buffers<T>&);

// Registry of instruction kinds; each kernel family registers its kinds.
template <typename T>
std::map<std::string, InstrFactory<T>>& instr_registry();

template <typename T>
struct RegisterInstr {
    RegisterInstr(const char* kind, InstrFactory<T> f) { instr_registry<T>()[kind] = f; }
};

// Registers KIND for float and double with one factory template FACTORY<T>.
#define NC_REGISTER_INSTR(KIND, FACTORY)                                        \
    static ::nc::RegisterInstr<float> nc_reg_f_##FACTORY(KIND, &FACTORY<float>); \
    static ::nc::RegisterInstr<double> nc_reg_d_##FACTORY(KIND, &FACTORY<double>)

// Checks that every address in `addrs` lies inside `pool`; throws otherwise.
template <typename E>
void check_addresses(const std::vector<int64_t>& addrs, const Pool<E>& pool,
                     const std::string& what) {
    for (int64_t a : addrs) {
        if (a < 0 || a >= pool.size())
            throw std::out_of_range(what + ": address " + std::to_string(a) +
                                    " outside buffer of size " +
                                    std::to_string(pool.size()));
    }
}

// The first and last address of a strided view a + i s1 + j s2 (i < n1,
// j < n2, n1 and n2 >= 1); strides may be negative.
inline std::pair<int64_t, int64_t> view_span(int64_t a, int64_t n1, int64_t s1, int64_t n2,
                                             int64_t s2) {
    const int64_t d1 = (n1 - 1) * s1, d2 = (n2 - 1) * s2;
    return {a + std::min<int64_t>(d1, 0) + std::min<int64_t>(d2, 0),
            a + std::max<int64_t>(d1, 0) + std::max<int64_t>(d2, 0)};
}

// The corners of a view must lie in the buffer, all on one side of the
// shared/state boundary (a view never spans two regions).
template <typename E>
void check_corners(const std::vector<int64_t>& corners, const Pool<E>& pool,
                   const std::string& what) {
    check_addresses(corners, pool, what);
    for (int64_t a : corners)
        if ((a < pool.n_shared) != (corners.front() < pool.n_shared))
            throw std::out_of_range(what + ": view spans the shared and state regions");
}

template <typename T>
std::vector<T> to_scalar_vector(const std::vector<double>& v) {
    return std::vector<T>(v.begin(), v.end());
}

void check_same_length(const InstrSpec& spec, const std::vector<std::string>& names);

}  // namespace nc
