// pybind11 module `nengo_cuda._native`: the CPU backend's step loop.
//
// Python owns the signal buffers (NumPy arrays); this module keeps references
// to them and runs the planned program in place.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "cpu/runner.h"

#ifndef NC_WITH_CUDA
#define NC_WITH_CUDA 0
#endif
#if NC_WITH_CUDA
#include "cuda/device.h"
#endif

namespace py = pybind11;
using nc::Buffers;
using nc::InstrSpec;

namespace {

// A Python callable run as one instruction (fallback for operators without a kernel).
template <typename T>
struct Callback : nc::Instr<T> {
    py::function fn;
    void run(const Buffers<T>&, const nc::StepInfo&) override { fn(); }
};

template <typename E>
E* checked_buffer(py::array& arr, int64_t need, const char* what) {
    if (!py::isinstance<py::array_t<E>>(arr))
        throw py::type_error(std::string(what) + ": wrong dtype");
    if (!(arr.flags() & py::array::c_style) || !arr.writeable())
        throw py::value_error(std::string(what) + ": must be a writeable C-contiguous array");
    if (arr.size() < need)
        throw py::value_error(std::string(what) + ": has " + std::to_string(arr.size()) +
                              " elements, needs " + std::to_string(need));
    return static_cast<E*>(arr.mutable_data());
}

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
    }

    int64_t add(const std::string& kind, std::map<std::string, std::vector<int64_t>> ints,
                std::map<std::string, std::vector<double>> floats,
                std::map<std::string, double> scalars) {
        auto& reg = nc::instr_registry<T>();
        auto it = reg.find(kind);
        if (it == reg.end()) throw py::value_error("unknown instruction kind '" + kind + "'");
        InstrSpec spec{kind, std::move(ints), std::move(floats), std::move(scalars)};
        return runner_.add(it->second(spec, runner_.buf));
    }

    int64_t add_callback(py::function fn) {
        auto cb = std::make_unique<Callback<T>>();
        cb->fn = std::move(fn);
        return runner_.add(std::move(cb));
    }

    void set_enabled(int64_t i, bool on) { runner_.set_enabled(i, on); }

    void set_table(int64_t i, const std::string& name,
                   py::array_t<double, py::array::c_style | py::array::forcecast> data) {
        std::vector<double> values(data.data(), data.data() + data.size());
        runner_.instr(i).set_table(name, std::move(values));
    }
    int64_t size() const { return runner_.size(); }
    int64_t steps_done() const { return runner_.steps_done; }

    // feeds: [(after, addrs, data(n_trials, n_steps, len(addrs)))]
    // probes: [(addrs, mask(n_steps,), out(n_trials, n_samples, len(addrs)))]
    void run(int64_t n_steps, py::list feeds, py::list probes) {
        if (n_steps < 0) throw py::value_error("n_steps must be non-negative");
        const int64_t nt = runner_.buf.n_trials;
        std::vector<nc::Feed<T>> fv;
        std::vector<py::array> keep;  // keep arrays alive during the run
        for (auto item : feeds) {
            auto tup = item.cast<py::tuple>();
            nc::Feed<T> f;
            f.after = tup[0].cast<int64_t>();
            if (f.after < -1 || f.after >= runner_.size())
                throw py::index_error("feed position " + std::to_string(f.after) +
                                      " is not an instruction index (or -1)");
            f.addrs = tup[1].cast<std::vector<int64_t>>();
            nc::check_addresses(f.addrs, runner_.buf.f, "feed");
            py::array data = tup[2].cast<py::array>();
            if (data.ndim() != 3 || data.shape(0) != nt || data.shape(1) != n_steps ||
                data.shape(2) != static_cast<py::ssize_t>(f.addrs.size()))
                throw py::value_error("feed data has the wrong shape");
            if (!(data.flags() & py::array::c_style) || !py::isinstance<py::array_t<T>>(data))
                throw py::value_error("feed data must be C-contiguous with the program dtype");
            f.data = static_cast<const T*>(data.data());
            keep.push_back(data);
            fv.push_back(std::move(f));
        }
        std::vector<nc::ProbeRecord<T>> pv;
        for (auto item : probes) {
            auto tup = item.cast<py::tuple>();
            nc::ProbeRecord<T> p;
            p.addrs = tup[0].cast<std::vector<int64_t>>();
            nc::check_addresses(p.addrs, runner_.buf.f, "probe");
            py::array mask = tup[1].cast<py::array>();
            py::array out = tup[2].cast<py::array>();
            if (!py::isinstance<py::array_t<uint8_t>>(mask) || mask.ndim() != 1 ||
                mask.shape(0) != n_steps || !(mask.flags() & py::array::c_style))
                throw py::value_error("probe mask must be uint8 of shape (n_steps,)");
            if (out.ndim() != 3 || out.shape(0) != nt ||
                out.shape(2) != static_cast<py::ssize_t>(p.addrs.size()))
                throw py::value_error("probe output has the wrong shape");
            p.out = checked_buffer<T>(out, out.size(), "probe output");
            p.mask = static_cast<const uint8_t*>(mask.data());
            p.n_samples = out.shape(1);
            int64_t masked = 0;
            for (int64_t s = 0; s < n_steps; ++s) masked += p.mask[s] != 0;
            if (masked > p.n_samples)
                throw py::value_error("probe output has " + std::to_string(p.n_samples) +
                                      " samples; the mask selects " + std::to_string(masked));
            keep.push_back(mask);
            keep.push_back(out);
            pv.push_back(std::move(p));
        }
        runner_.run(n_steps, fv, pv);
    }

  private:
    py::array fbuf_, ibuf_;
    nc::Runner<T> runner_;
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
        .def("set_enabled", &NativeProgram<T>::set_enabled)
        .def("set_table", &NativeProgram<T>::set_table, py::arg("index"), py::arg("name"),
             py::arg("data"))
        .def("run", &NativeProgram<T>::run, py::arg("n_steps"), py::arg("feeds"),
             py::arg("probes"))
        .def_property_readonly("steps_done", &NativeProgram<T>::steps_done)
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
    bind_program<float>(m, "ProgramFloat32");
    bind_program<double>(m, "ProgramFloat64");
    m.def("instruction_kinds", &kinds, "Instruction kinds this build knows.");
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
