// pybind11 module `nengo_cuda._native`: the CPU backend's step loop.
//
// Python owns the signal buffers (NumPy arrays); this module keeps references
// to them and runs the planned program in place.
#include <algorithm>

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "cpu/conv_spec.h"
#include "cpu/runner.h"
#include "cpu/simd.h"
#include "python_run.h"
#include "run_args.h"

#ifndef NC_WITH_CUDA
#define NC_WITH_CUDA 0
#endif
#if NC_WITH_CUDA
#include "cuda/device.h"
#endif

namespace py = pybind11;
using nc::Buffers;
using nc::InstrSpec;

// csrc/cuda/bindings_device.cpp: the CUDA backend's programs (and their host emulator).
void bind_device_programs(py::module_& m);
// csrc/cpu/team_bindings.cpp: the instruction-splitting team's policy and counters.
void bind_team(py::module_& m);

namespace {

// A Python callable run as one instruction (fallback for operators without a
// kernel), on the thread that called the run, which runs without the GIL.
template <typename T>
struct Callback : nc::Instr<T> {
    py::function fn;
    void run(const Buffers<T>&, const nc::StepInfo&) override {
        nc::call_with_gil([this] {
            const nc::FpScope python_mode(nc::caller_fp_state());  // see cpu/fp_mode.h
            fn();
        });
    }
};

using nc::checked_buffer;

template <typename T>
class NativeProgram {
  public:
    NativeProgram(py::array fbuf, int64_t f_shared, int64_t f_state, py::array ibuf,
                  int64_t i_shared, int64_t i_state, int n_trials, double dt)
        : fbuf_(fbuf), ibuf_(ibuf) {
        if (n_trials < 1) throw py::value_error("n_trials must be >= 1");
        if (f_shared < 0 || f_state < 0 || i_shared < 0 || i_state < 0)
            throw py::value_error("buffer sizes must be non-negative");
        auto& b = runner_.buf;
        b.n_trials = n_trials;
        b.f = {checked_buffer<T>(fbuf_, f_shared + n_trials * f_state, "float buffer"),
               f_shared, f_state};
        b.i = {checked_buffer<int64_t>(ibuf_, i_shared + n_trials * i_state, "int buffer"),
               i_shared, i_state};
        runner_.dt = dt;
        runner_.stop_check = stop_.stop_check();
    }

    int64_t add(const std::string& kind, const py::dict& ints, const py::dict& floats,
                const py::dict& scalars) {
        check_idle("add an instruction to");
        auto& reg = nc::instr_registry<T>();
        auto it = reg.find(kind);
        if (it == reg.end()) throw py::value_error("unknown instruction kind '" + kind + "'");
        const InstrSpec spec = nc::instr_spec(kind, ints, floats, scalars);
        return runner_.add(it->second(spec, runner_.buf));
    }

    int64_t add_callback(py::function fn) {
        check_idle("add a callback to");
        auto cb = std::make_unique<Callback<T>>();
        cb->fn = std::move(fn);
        return runner_.add(std::move(cb));
    }

    void set_enabled(int64_t i, bool on) {
        check_idle("enable or disable an instruction of");
        runner_.set_enabled(i, on);
    }
    // Python wrote the shared region: instructions re-read their copies next run.
    void mark_shared_changed() {
        check_idle("mark the shared signals changed of");
        runner_.shared_changed = true;
    }
    // Threads that split the trials of a minibatch (0: as many as OpenMP allows).
    void set_trial_threads(int n) {
        check_idle("set the trial threads of");
        if (n < 0) throw py::value_error("trial_threads must be >= 0");
        runner_.trial_threads = n;
    }
    int trial_team_size(int64_t n_steps) const { return runner_.trial_team_size(n_steps); }
    int segmented_team_size(int64_t n_steps) const {
        return runner_.segmented_team_size(n_steps);
    }
    // Trials that run together through all steps (0: from the state size).
    void set_trial_chunk(int n) {
        check_idle("set the trial chunk of");
        if (n < 0) throw py::value_error("trial_chunk must be >= 0");
        runner_.trial_chunk = n;
    }
    int trial_chunk_size() const { return runner_.chunk_size(runner_.buf.n_trials); }

    void set_table(int64_t i, const std::string& name,
                   py::array_t<double, py::array::c_style | py::array::forcecast> data) {
        check_idle("replace a table of");
        std::vector<double> values(data.data(), data.data() + data.size());
        runner_.instr(i).set_table(name, std::move(values));
    }
    int64_t size() const { return runner_.size(); }
    int64_t steps_done() const { return runner_.steps_done; }
    // Per-instruction timing (benchmarks/profile.py): on/off resets the counters.
    void set_profiling(bool on) {
        check_idle("set profiling of");
        runner_.profiling = on;
        std::fill(runner_.seconds.begin(), runner_.seconds.end(), 0.0);
    }
    std::vector<double> instruction_seconds() const { return runner_.seconds; }
    // Stops a run in progress (from another thread) at its next slice boundary.
    void request_stop() { stop_.request(); }

    // feeds: [(after, addrs, data(n_trials, n_steps, len(addrs)))]
    // probes: [(addrs, mask(n_steps,), out(n_trials, n_samples, len(addrs)))]
    // The steps run without the GIL (python_run.h).
    void run(int64_t n_steps, py::list feeds, py::list probes) {
        const nc::RunningScope running(running_, stop_);
        if (n_steps < 0) throw py::value_error("n_steps must be non-negative");
        const int64_t nt = runner_.buf.n_trials;
        auto args = nc::parse_run_args<T>(n_steps, nt, feeds, probes, runner_.buf.f);
        for (const auto& f : args.feeds)
            if (f.after < -1 || f.after >= runner_.size())
                throw py::index_error("feed position " + std::to_string(f.after) +
                                      " is not an instruction index (or -1)");
        for (const auto& p : args.probes) {
            int64_t masked = 0;
            for (int64_t s = 0; s < n_steps; ++s) masked += p.mask[s] != 0;
            if (masked > p.n_samples)
                throw py::value_error("probe output has " + std::to_string(p.n_samples) +
                                      " samples; the mask selects " + std::to_string(masked));
        }
        const py::gil_scoped_release release;
        runner_.run(n_steps, args.feeds, args.probes);
    }

  private:
    void check_idle(const char* what) const { nc::RunningScope::check_idle(running_, what); }

    py::array fbuf_, ibuf_;
    nc::StopRequest stop_;  // (before runner_, whose stop check points at it)
    nc::Runner<T> runner_;
    bool running_ = false;
};

template <typename T>
void bind_program(py::module_& m, const char* name) {
    py::class_<NativeProgram<T>>(m, name)
        .def(py::init<py::array, int64_t, int64_t, py::array, int64_t, int64_t, int, double>(),
             py::arg("fbuf"), py::arg("f_shared"), py::arg("f_state"), py::arg("ibuf"),
             py::arg("i_shared"), py::arg("i_state"), py::arg("n_trials"), py::arg("dt"))
        .def("add", &NativeProgram<T>::add, py::arg("kind"), py::arg("ints"),
             py::arg("floats"), py::arg("scalars"))
        .def("add_callback", &NativeProgram<T>::add_callback)
        .def("mark_shared_changed", &NativeProgram<T>::mark_shared_changed)
        .def("set_enabled", &NativeProgram<T>::set_enabled)
        .def("set_trial_threads", &NativeProgram<T>::set_trial_threads, py::arg("n"))
        .def("trial_team_size", &NativeProgram<T>::trial_team_size, py::arg("n_steps"))
        .def("segmented_team_size", &NativeProgram<T>::segmented_team_size, py::arg("n_steps"))
        .def("set_trial_chunk", &NativeProgram<T>::set_trial_chunk, py::arg("n"))
        .def("trial_chunk_size", &NativeProgram<T>::trial_chunk_size)
        .def("set_table", &NativeProgram<T>::set_table, py::arg("index"), py::arg("name"),
             py::arg("data"))
        .def("run", &NativeProgram<T>::run, py::arg("n_steps"), py::arg("feeds"),
             py::arg("probes"))
        .def_property_readonly("steps_done", &NativeProgram<T>::steps_done)
        .def("set_profiling", &NativeProgram<T>::set_profiling)
        .def("instruction_seconds", &NativeProgram<T>::instruction_seconds)
        .def("request_stop", &NativeProgram<T>::request_stop)
        .def("__len__", &NativeProgram<T>::size);
}

std::vector<std::string> kinds() {
    std::vector<std::string> out;
    for (auto& kv : nc::instr_registry<double>()) out.push_back(kv.first);
    return out;
}

}  // namespace

PYBIND11_MODULE(_native, m) {
    m.doc() = "nengo_cuda native CPU step loop";
    nc::watch_forks();  // (a forked child runs its trials on one thread: cpu/parallel.h)
    m.def(
        "mark_forked_child", [] { nc::in_forked_child().store(true); },
        "This process was forked before the module loaded (cpu/parallel.h: watch_forks); "
        "its trials run on one thread.");
    m.def(
        "in_forked_child", [] { return nc::in_forked_child().load(); },
        "Whether this process runs its trials on one thread as a forked child.");
    bind_program<float>(m, "ProgramFloat32");
    bind_program<double>(m, "ProgramFloat64");
    m.def("instruction_kinds", &kinds, "Instruction kinds this build knows.");
    m.def(
        "conv_pairs",
        [](const std::vector<int64_t>& axes, bool transpose) {
            nc::InstrSpec spec;
            spec.kind = "conv_pairs";
            spec.ints["axes"] = axes;
            spec.scalars = {{"transpose", transpose ? 1.0 : 0.0}, {"X_ps", 1}, {"X_cs", 1},
                            {"Y_ps", 1}, {"Y_cs", 1}, {"filters", 1}, {"groups", 1},
                            {"in_channels", 1}};
            const nc::conv::Geometry g = nc::conv::geometry_from(spec);
            const int64_t n = nc::conv::pair_counts(g).total;
            py::array_t<int64_t> counts(g.out_positions()), pos(n), tap(n);
            auto c = counts.mutable_unchecked<1>();
            auto p = pos.mutable_unchecked<1>();
            auto t = tap.mutable_unchecked<1>();
            int64_t j = 0;
            for (int64_t o = 0; o < g.out_positions(); ++o) {
                const nc::conv::Row r = nc::conv::row(g, o);
                c(o) = r.size();
                r.for_each(g, [&](int64_t pi, int64_t ti) { p(j) = pi, t(j) = ti, ++j; });
            }
            return py::make_tuple(counts, pos, tap);
        },
        py::arg("axes"), py::arg("transpose"),
        "A convolution's (pairs per output position, input positions, kernel taps), in "
        "conv_inc's order, from its geometry (nengo_cuda.lowering.conv.geometry); for tests.");
    bind_device_programs(m);
    bind_team(m);
    // SIMD levels by name (nc::kSimdLevelNames): "baseline" (SSE2), "avx2", "avx512".
    using nc::kSimdLevelNames;
    m.def(
        "set_simd_level",
        [](const std::string& name) {
            const int level = nc::simd_level_named(name.c_str());
            if (level < 0)
                throw std::invalid_argument(
                    "set_simd_level: expected 'baseline', 'avx2' or 'avx512', got '" + name + "'");
            return std::string(kSimdLevelNames[nc::simd_level_cap().exchange(level)]);
        },
        py::arg("level"),
        "Caps the SIMD code the CPU kernels use at `level` ('baseline', 'avx2' or 'avx512'; "
        "for tests and measurements); returns the old cap.  Instructions choose when they are "
        "built or per call, so set it before building.  NC_SIMD in the environment sets it at "
        "import.");
    const char* env_level = std::getenv("NC_SIMD");  // an empty value: no cap, silently
    if (env_level != nullptr && *env_level != 0 && nc::simd_level_named(env_level) < 0)
        py::module_::import("warnings")
            .attr("warn")("NC_SIMD=" + std::string(env_level) +
                          " is not 'baseline', 'avx2' or 'avx512'; ignored (no cap)");
    m.def(
        "simd_level", []() { return std::string(kSimdLevelNames[nc::simd_level()]); },
        "The SIMD code the CPU kernels use now: the CPU's best, at most the cap.");
    m.def(
        "cpu_simd_level", []() { return std::string(kSimdLevelNames[nc::cpu_simd_level()]); },
        "The best SIMD code this CPU runs ('baseline', 'avx2' or 'avx512').");
    m.attr("built_with_cuda") = py::bool_(NC_WITH_CUDA);
    // (device count, reason when zero); never raises, so callers can report the cause.
    m.def("cuda_device_count", []() {
#if NC_WITH_CUDA
        std::string why;
        int n = nc::cuda::device_count(why);
        return py::make_tuple(n, why);
#else
        return py::make_tuple(0, std::string("nengo_cuda was built without nvcc"));
#endif
    });
#ifdef _OPENMP
    m.attr("openmp") = py::bool_(true);
#else
    m.attr("openmp") = py::bool_(false);
#endif
}
