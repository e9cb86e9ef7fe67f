// Python-side arguments of a run (feeds, probes) and buffers, checked and
// turned into the plain structs of cpu/runner.h.  Shared by the CPU bindings
// (bindings.cpp) and the CUDA backend's (cuda/bindings_device.cpp).
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <map>
#include <string>
#include <type_traits>
#include <vector>

#include "cpu/runner.h"

namespace nc {

// A writeable C-contiguous array of E with at least `need` elements.
template <typename E>
E* checked_buffer(pybind11::array& arr, int64_t need, const char* what) {
    namespace py = pybind11;
    if (!py::isinstance<py::array_t<E>>(arr))
        throw py::type_error(std::string(what) + ": wrong dtype");
    if (!(arr.flags() & py::array::c_style) || !arr.writeable())
        throw py::value_error(std::string(what) + ": must be a writeable C-contiguous array");
    if (arr.size() < need)
        throw py::value_error(std::string(what) + ": has " + std::to_string(arr.size()) +
                              " elements, needs " + std::to_string(need));
    return static_cast<E*>(arr.mutable_data());
}

// A 1-D array or list of numbers as a vector of E, copied from NumPy's memory
// (pybind11's list conversion goes element by element through Python
// objects: 2.5 us per address of a 30,000-neuron instruction, 40 ns per
// probed address of every run).  Integer vectors must hold integers (a float
// array is an error, as it was for the list conversion); empty arrays may
// have any dtype.  `where` names the argument in errors.
template <typename E>
std::vector<E> vector_of(pybind11::handle value, const std::string& where) {
    namespace py = pybind11;
    py::array raw = py::array::ensure(value);
    if (!raw || raw.ndim() != 1)
        throw py::type_error(where + " must be a 1-D array or list of numbers");
    const char k = raw.dtype().kind();
    const bool numbers = k == 'i' || k == 'u' || k == 'b' || (!std::is_integral_v<E> && k == 'f');
    if (raw.size() > 0 && !numbers)
        throw py::type_error(where + " must hold " +
                             (std::is_integral_v<E> ? "integers" : "numbers"));
    auto arr = py::array_t<E, py::array::c_style | py::array::forcecast>::ensure(raw);
    if (!arr) throw py::type_error(where + " cannot be converted");
    return std::vector<E>(arr.data(), arr.data() + arr.size());
}

// The arrays of a dict {name: 1-D array or list} as vectors of E (vector_of).
template <typename E>
std::map<std::string, std::vector<E>> vectors_of(const pybind11::dict& d,
                                                 const std::string& kind, const char* what) {
    namespace py = pybind11;
    std::map<std::string, std::vector<E>> out;
    for (const auto& item : d) {
        const std::string name = py::cast<std::string>(item.first);
        out.emplace(name, vector_of<E>(item.second, kind + ": " + what + " '" + name + "'"));
    }
    return out;
}

// An InstrSpec from the planner's dicts (Instruction.ints, floats, scalars).
inline InstrSpec instr_spec(const std::string& kind, const pybind11::dict& ints,
                            const pybind11::dict& floats, const pybind11::dict& scalars) {
    namespace py = pybind11;
    InstrSpec spec{kind, vectors_of<int64_t>(ints, kind, "int array"),
                   vectors_of<double>(floats, kind, "float array"), {}};
    for (const auto& item : scalars)
        spec.scalars.emplace(py::cast<std::string>(item.first), py::cast<double>(item.second));
    return spec;
}

template <typename T>
struct RunArgs {
    std::vector<Feed<T>> feeds;
    std::vector<ProbeRecord<T>> probes;
    std::vector<pybind11::array> keep;  // keeps the arrays alive during the run
};

// feeds: [(after, addrs, data(n_trials, n_steps, len(addrs)))]
// probes: [(addrs, mask(n_steps,), out(n_trials, n_samples, len(addrs)))]
template <typename T>
RunArgs<T> parse_run_args(int64_t n_steps, int64_t n_trials, pybind11::list feeds,
                          pybind11::list probes, const Pool<T>& pool) {
    namespace py = pybind11;
    RunArgs<T> args;
    for (auto item : feeds) {
        auto tup = item.cast<py::tuple>();
        Feed<T> f;
        f.after = tup[0].cast<int64_t>();
        f.addrs = vector_of<int64_t>(tup[1], "feed addresses");
        check_addresses(f.addrs, pool, "feed");
        py::array data = tup[2].cast<py::array>();
        if (data.ndim() != 3 || data.shape(0) != n_trials || data.shape(1) != n_steps ||
            data.shape(2) != static_cast<py::ssize_t>(f.addrs.size()))
            throw py::value_error("feed data has the wrong shape");
        if (!(data.flags() & py::array::c_style) || !py::isinstance<py::array_t<T>>(data))
            throw py::value_error("feed data must be C-contiguous with the program dtype");
        f.data = static_cast<const T*>(data.data());
        args.keep.push_back(data);
        args.feeds.push_back(std::move(f));
    }
    for (auto item : probes) {
        auto tup = item.cast<py::tuple>();
        ProbeRecord<T> p;
        p.addrs = vector_of<int64_t>(tup[0], "probe addresses");
        check_addresses(p.addrs, pool, "probe");
        py::array mask = tup[1].cast<py::array>();
        py::array out = tup[2].cast<py::array>();
        if (!py::isinstance<py::array_t<uint8_t>>(mask) || mask.ndim() != 1 ||
            mask.shape(0) != n_steps || !(mask.flags() & py::array::c_style))
            throw py::value_error("probe mask must be uint8 of shape (n_steps,)");
        if (out.ndim() != 3 || out.shape(0) != n_trials ||
            out.shape(2) != static_cast<py::ssize_t>(p.addrs.size()))
            throw py::value_error("probe output has the wrong shape");
        p.out = checked_buffer<T>(out, out.size(), "probe output");
        p.mask = static_cast<const uint8_t*>(mask.data());
        p.n_samples = out.shape(1);
        args.keep.push_back(mask);
        args.keep.push_back(out);
        args.probes.push_back(std::move(p));
    }
    return args;
}

}  // namespace nc
