// The device program as the bindings see it: an abstract class with two
// implementations built from one template (device_program.h):
//   - "gpu": CUDA kernels, graphs and streams (program_cuda.cu, only with nvcc);
//   - "emulator": the same kernel bodies and the same host logic, run on the
//     host with host memory (program_emulated.cpp, always built), so that
//     everything but the CUDA calls is tested on machines without a GPU.
//
// Device memory is never allocated here: `DeviceHooks::alloc` asks Python
// (CuPy for the GPU, NumPy for the emulator) and `free` gives it back.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "../cpu/program.h"
#include "../cpu/runner.h"
#include "../cpu/stop_checks.h"

namespace nc {

struct DeviceHooks {
    std::function<uint64_t(size_t)> alloc;  // bytes -> device address (never 0)
    std::function<void(uint64_t)> free;     // gives an address from alloc back
    StopCheck check_stop;  // between slices of a run's steps (stop_checks.h)
};

// Where the program's signals live: host pools (NumPy, owned by Python, the
// source of truth between runs) and their device copies (same sizes).
template <typename T>
struct DeviceLayout {
    T* host_f = nullptr;
    int64_t* host_i = nullptr;
    uint64_t dev_f = 0, dev_i = 0;
    int64_t f_shared = 0, f_state = 0, i_shared = 0, i_state = 0;
    int n_trials = 1;
    double dt = 0.001;
    int device = 0;  // CUDA device ordinal (ignored by the emulator)
};

// One launch group of a profiled run (see DeviceProgram::profile): what a
// graph would launch as a unit (one instruction, a merged batch of element-wise
// instructions, the feeds or probes at a position), a callback, or the step
// counter's advance.
struct ProfileGroup {
    std::vector<int64_t> instrs;     // instruction indices covered (none: feed, probe, advance)
    std::vector<std::string> kinds;  // their distinct kinds, or {"feed"}, {"probe"}, {"advance"}
    int64_t launches = 0;            // kernel launches per step (0: a callback, host work)
    int64_t phases = 0;              // in graphs: phases of a shared launch (0: launched alone)
    double seconds = 0;              // summed over the run's steps
};

struct RunProfile {
    std::vector<ProfileGroup> groups;  // in launch order
    // Instructions that launch nothing (empty element-wise batches).
    std::vector<int64_t> idle;
    int64_t steps = 0;
    double wall_s = 0;  // host clock around the stepping loop (after uploads, before downloads)
};

template <typename T>
class DeviceProgram {
  public:
    virtual ~DeviceProgram() = default;
    // Adds a native instruction (same plain data as the CPU backend); returns its index.
    virtual int64_t add(const InstrSpec& spec) = 0;
    // Adds a host callback.  Around it, the pool ranges (start, length pairs of
    // absolute element indices) it reads or writes are copied to the host and back.
    virtual int64_t add_callback(std::function<void()> fn, std::vector<int64_t> f_ranges,
                                 std::vector<int64_t> i_ranges) = 0;
    virtual void set_enabled(int64_t index, bool on) = 0;
    virtual void set_table(int64_t index, const std::string& name, std::vector<double> data) = 0;
    // Runs n_steps with the same feeds and probes as the CPU Runner (host
    // arrays); ordered after and before work on `user_stream` (a cudaStream_t).
    virtual void run(int64_t n_steps, std::vector<Feed<T>>& feeds,
                     std::vector<ProbeRecord<T>>& probes, uint64_t user_stream) = 0;
    // Runs like `run` (same steps, state and probe data), but without graphs:
    // every launch group is issued directly with a timing mark after it (a
    // CUDA event; the host clock in the emulator).  A group's time is its
    // kernels' device time plus the gap before them, an upper bound; the graph
    // run is the real total.
    virtual RunProfile profile(int64_t n_steps, std::vector<Feed<T>>& feeds,
                               std::vector<ProbeRecord<T>>& probes, uint64_t user_stream) = 0;
    virtual int64_t steps_done() const = 0;
    virtual int64_t size() const = 0;
    // Fill probe buffers with NaN before each run (checks that every sample is written).
    virtual void set_poison(bool on) = 0;
    // The stream (cudaStream_t) that add, add_callback and set_table order
    // their uploads after and before, as run does with its `user_stream`.
    virtual void set_stream(uint64_t user_stream) = 0;
    // Numbers about the last run's step: launches, steps per graph, segments...
    virtual std::map<std::string, int64_t> stats() const = 0;
    // Frees every device buffer (through hooks.free) and CUDA object.
    virtual void close() = 0;
};

// Factories.  The GPU ones exist only when built with nvcc (NC_WITH_CUDA).
std::unique_ptr<DeviceProgram<float>> make_gpu_program_f32(const DeviceLayout<float>&,
                                                           DeviceHooks);
std::unique_ptr<DeviceProgram<double>> make_gpu_program_f64(const DeviceLayout<double>&,
                                                            DeviceHooks);
std::unique_ptr<DeviceProgram<float>> make_emulated_program_f32(const DeviceLayout<float>&,
                                                                DeviceHooks);
std::unique_ptr<DeviceProgram<double>> make_emulated_program_f64(const DeviceLayout<double>&,
                                                                 DeviceHooks);

}  // namespace nc
