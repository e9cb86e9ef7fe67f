// pybind11 classes for the device programs (see device_api.h):
//   EmulatedProgramFloat32/64  always (host emulator of the CUDA backend)
//   CudaProgramFloat32/64      when built with nvcc (NC_WITH_CUDA)
// Same methods as the CPU ProgramFloat32/64, plus device buffers given as
// integer addresses, allocation hooks, and the caller's stream in `run`.
#include <pybind11/functional.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "../python_run.h"
#include "../run_args.h"
#include "device_api.h"
#include "knobs.h"

#ifndef NC_WITH_CUDA
#define NC_WITH_CUDA 0
#endif

namespace py = pybind11;

namespace {

using nc::checked_buffer;

template <typename T>
using Factory = std::unique_ptr<nc::DeviceProgram<T>> (*)(const nc::DeviceLayout<T>&,
                                                          nc::DeviceHooks);

// Kind (0: emulator, 1: GPU) makes each bound class a distinct C++ type, as
// pybind11 registers a C++ type once.
template <typename T, int Kind>
class PyDeviceProgram {
  public:
    PyDeviceProgram(Factory<T> factory, py::array fbuf, int64_t f_shared, int64_t f_state,
                    py::array ibuf, int64_t i_shared, int64_t i_state, int n_trials, double dt,
                    uint64_t dev_f, uint64_t dev_i, py::function alloc, py::function free,
                    int device)
        : fbuf_(fbuf), ibuf_(ibuf), n_trials_(n_trials) {
        if (n_trials < 1) throw py::value_error("n_trials must be >= 1");
        if (f_shared < 0 || f_state < 0 || i_shared < 0 || i_state < 0)
            throw py::value_error("buffer sizes must be non-negative");
        if (dev_f == 0 || dev_i == 0) throw py::value_error("device buffers must not be null");
        nc::DeviceLayout<T> lay;
        lay.host_f = checked_buffer<T>(fbuf_, f_shared + n_trials * f_state, "float buffer");
        lay.host_i = checked_buffer<int64_t>(ibuf_, i_shared + n_trials * i_state, "int buffer");
        lay.dev_f = dev_f;
        lay.dev_i = dev_i;
        lay.f_shared = f_shared;
        lay.f_state = f_state;
        lay.i_shared = i_shared;
        lay.i_state = i_state;
        lay.n_trials = n_trials;
        lay.dt = dt;
        lay.device = device;
        host_f_ = {lay.host_f, f_shared, f_state};
        // (called during runs too, which release the GIL: python_run.h)
        nc::DeviceHooks hooks;
        hooks.alloc = [alloc](size_t bytes) {
            const py::gil_scoped_acquire gil;
            return alloc(bytes).template cast<uint64_t>();
        };
        hooks.free = [free](uint64_t ptr) {
            const py::gil_scoped_acquire gil;
            free(ptr);
        };
        hooks.check_stop = stop_.stop_check();
        prog_ = factory(lay, std::move(hooks));
    }

    nc::DeviceProgram<T>& prog() {
        if (!prog_) throw std::runtime_error("the device program is closed");
        return *prog_;
    }
    // The program, not running: for calls that change it (see RunningScope).
    nc::DeviceProgram<T>& idle_prog(const char* what) {
        nc::RunningScope::check_idle(running_, what);
        return prog();
    }

    int64_t add(const std::string& kind, const py::dict& ints, const py::dict& floats,
                const py::dict& scalars) {
        return idle_prog("add an instruction to").add(nc::instr_spec(kind, ints, floats, scalars));
    }

    int64_t add_callback(py::function fn, std::vector<int64_t> f_ranges,
                         std::vector<int64_t> i_ranges) {
        auto call = [fn]() { nc::call_with_gil(fn); };  // (runs without the GIL)
        return idle_prog("add a callback to")
            .add_callback(std::move(call), std::move(f_ranges), std::move(i_ranges));
    }

    void set_table(int64_t i, const std::string& name,
                   py::array_t<double, py::array::c_style | py::array::forcecast> data) {
        std::vector<double> values(data.data(), data.data() + data.size());
        nc::DeviceProgram<T>& p = idle_prog("replace a table of");
        const nc::WaitScope waiting(running_, "replace a table of");
        const py::gil_scoped_release release;  // (it waits for the stream)
        p.set_table(i, name, std::move(values));
    }

    // feeds: [(after, addrs, data(n_trials, n_steps, len(addrs)))]
    // probes: [(addrs, mask(n_steps,), out(n_trials, n_samples, len(addrs)))]
    // The steps run without the GIL (python_run.h).
    void run(int64_t n_steps, py::list feeds, py::list probes, uint64_t stream) {
        const nc::RunningScope running(running_, stop_);
        if (n_steps < 0) throw py::value_error("n_steps must be non-negative");
        const int64_t nt = n_trials_;
        auto args = nc::parse_run_args<T>(n_steps, nt, feeds, probes, host_f_);
        check_feeds(args.feeds);
        nc::DeviceProgram<T>& p = prog();
        const py::gil_scoped_release release;
        p.run(n_steps, args.feeds, args.probes, stream);
    }

    // As run, each launch group timed (DeviceProgram::profile); returns
    // {"groups": [{"instrs", "kinds", "launches", "phases", "seconds"}], "idle", "steps",
    // "wall_s"}.
    py::dict profile(int64_t n_steps, py::list feeds, py::list probes, uint64_t stream) {
        const nc::RunningScope running(running_, stop_);
        if (n_steps < 0) throw py::value_error("n_steps must be non-negative");
        auto args = nc::parse_run_args<T>(n_steps, n_trials_, feeds, probes, host_f_);
        check_feeds(args.feeds);
        nc::DeviceProgram<T>& p = prog();
        nc::RunProfile prof;
        {
            const py::gil_scoped_release release;
            prof = p.profile(n_steps, args.feeds, args.probes, stream);
        }
        py::list groups;
        for (const auto& g : prof.groups) {
            py::dict d;
            d["instrs"] = g.instrs;
            d["kinds"] = g.kinds;
            d["launches"] = g.launches;
            d["phases"] = g.phases;
            d["seconds"] = g.seconds;
            groups.append(d);
        }
        py::dict out;
        out["groups"] = groups;
        out["idle"] = prof.idle;
        out["steps"] = prof.steps;
        out["wall_s"] = prof.wall_s;
        return out;
    }

    // Stops a run in progress (from another thread) at its next slice boundary.
    void request_stop() { stop_.request(); }

    // (With the GIL: closing destroys the callbacks' Python functions. Its
    // wait is for an idle stream, which follows no other: set_table's is not.)
    void close() {
        nc::RunningScope::check_idle(running_, "close");
        if (prog_) prog_->close();
        prog_.reset();
    }

  private:
    void check_feeds(const std::vector<nc::Feed<T>>& feeds) {
        for (const auto& f : feeds)
            if (f.after < -1 || f.after >= prog().size())
                throw py::value_error("feed position outside the program");
    }

    py::array fbuf_, ibuf_;
    int n_trials_;
    nc::Pool<T> host_f_;
    bool running_ = false;
    nc::StopRequest stop_;

  public:
    // declared last, so destroyed first: the program points into fbuf_ and ibuf_
    std::unique_ptr<nc::DeviceProgram<T>> prog_;
};

template <typename T, int Kind>
void bind_device(py::module_& m, const char* name, Factory<T> factory) {
    using P = PyDeviceProgram<T, Kind>;
    py::class_<P>(m, name)
        .def(py::init([factory](py::array fbuf, int64_t f_shared, int64_t f_state, py::array ibuf,
                                int64_t i_shared, int64_t i_state, int n_trials, double dt,
                                uint64_t dev_f, uint64_t dev_i, py::function alloc,
                                py::function free, int device) {
                 return std::make_unique<P>(factory, fbuf, f_shared, f_state, ibuf, i_shared,
                                            i_state, n_trials, dt, dev_f, dev_i, alloc, free,
                                            device);
             }),
             py::arg("fbuf"), py::arg("f_shared"), py::arg("f_state"), py::arg("ibuf"),
             py::arg("i_shared"), py::arg("i_state"), py::arg("n_trials"), py::arg("dt"),
             py::arg("dev_f"), py::arg("dev_i"), py::arg("alloc"), py::arg("free"),
             py::arg("device") = 0)
        .def("add", &P::add, py::arg("kind"), py::arg("ints"), py::arg("floats"),
             py::arg("scalars"))
        .def("add_callback", &P::add_callback, py::arg("fn"), py::arg("f_ranges"),
             py::arg("i_ranges"))
        .def("set_enabled",
             [](P& p, int64_t i, bool on) {
                 p.idle_prog("enable or disable an instruction of").set_enabled(i, on);
             })
        .def("set_table", &P::set_table, py::arg("index"), py::arg("name"), py::arg("data"))
        .def("set_stream", [](P& p, uint64_t s) { p.idle_prog("set the stream of").set_stream(s); })
        .def("set_poison", [](P& p, bool on) { p.idle_prog("set poisoning of").set_poison(on); })
        .def("run", &P::run, py::arg("n_steps"), py::arg("feeds"), py::arg("probes"),
             py::arg("stream") = 0)
        .def("profile", &P::profile, py::arg("n_steps"), py::arg("feeds"), py::arg("probes"),
             py::arg("stream") = 0)
        .def_property_readonly("steps_done", [](P& p) { return p.prog().steps_done(); })
        .def("stats", [](P& p) { return p.prog().stats(); })
        .def("request_stop", &P::request_stop)
        .def("close", &P::close)
        .def("__len__", [](P& p) { return p.prog().size(); });
}

}  // namespace

void bind_device_programs(py::module_& m) {
    m.def(
        "device_knobs",
        [] {
            py::list out;
            for (const nc::Knob& k : nc::knobs::kAll)
                out.append(py::make_tuple(k.name, k.fallback, k.lo, k.hi));
            return out;
        },
        "The device program's tuning knobs: (variable, default, lowest, highest).");
    bind_device<float, 0>(m, "EmulatedProgramFloat32", &nc::make_emulated_program_f32);
    bind_device<double, 0>(m, "EmulatedProgramFloat64", &nc::make_emulated_program_f64);
#if NC_WITH_CUDA
    bind_device<float, 1>(m, "CudaProgramFloat32", &nc::make_gpu_program_f32);
    bind_device<double, 1>(m, "CudaProgramFloat64", &nc::make_gpu_program_f64);
#endif
}
