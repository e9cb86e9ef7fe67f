// Python access to the instruction-splitting team (team.h, parallel.h): its
// policy and counters, and a self-test of its job protocol.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <vector>

#include "parallel.h"

namespace py = pybind11;

namespace {

// Sets what is given (None: unchanged); returns the previous (min_work, ignore_load).
py::tuple set_split_policy(py::object min_work, py::object ignore_load) {
    auto& p = nc::split_policy();
    py::tuple old = py::make_tuple(p.min_work.load(), p.ignore_load.load());
    if (!min_work.is_none()) {
        const auto w = min_work.cast<int64_t>();
        if (w < 1) throw py::value_error("min_work must be >= 1");
        p.min_work = w;
    }
    if (!ignore_load.is_none()) p.ignore_load = ignore_load.cast<bool>();
    return old;
}

py::dict team_counters() {
    nc::Team& team = nc::Team::instance(nc::max_run_threads());
    py::dict d;
    d["threads"] = team.size();
    d["jobs"] = team.jobs();
    d["worker_chunks"] = team.worker_chunks();
    d["stalls"] = team.stalls();
    return d;
}

// Runs `jobs` jobs of n iterations through parallel_for as a run would (the
// team held when the policy allows; on up to `ways` threads), each iteration
// busy for `spin_ns`, in a run's floating-point mode (flushing denormals, as
// float32 runs do).  Returns how often each iteration ran in the last job, and whether every
// iteration of every job ran in that mode.  Iteration `throw_at` of the last
// job raises.
py::tuple team_selftest(int64_t n, int64_t jobs, int64_t throw_at, bool dynamic,
                        int64_t spin_ns, int ways) {
    if (n < 0 || jobs < 1) throw py::value_error("n must be >= 0 and jobs >= 1");
    if (ways < 1) throw py::value_error("ways must be >= 1");
    std::vector<std::atomic<int>> visits(static_cast<size_t>(n));
    std::atomic<bool> modes_ok{true};
    {
        py::gil_scoped_release release;
        const nc::FpScope run_mode(nc::fp_state() | nc::kFlushDenormals);
        const unsigned mode = nc::fp_state();
        const nc::TeamScope team;
        for (int64_t j = 0; j < jobs; ++j) {
            for (auto& v : visits) v.store(0);
            const bool last = j == jobs - 1;
            nc::parallel_for(
                n, ways,
                [&](int64_t i) {
                    visits[i].fetch_add(1);
                    if (nc::fp_state() != mode) modes_ok = false;
                    const auto start = std::chrono::steady_clock::now();
                    while (std::chrono::steady_clock::now() - start <
                           std::chrono::nanoseconds(spin_ns)) {
                    }
                    if (last && i == throw_at)
                        throw std::runtime_error("iteration " + std::to_string(i));
                },
                dynamic);
        }
    }
    std::vector<int> out;
    for (auto& v : visits) out.push_back(v.load());
    return py::make_tuple(out, modes_ok.load());
}

}  // namespace

void bind_team(py::module_& m) {
    m.def("set_split_policy", &set_split_policy, py::arg("min_work") = py::none(),
          py::arg("ignore_load") = py::none(),
          "Instruction splitting: minimum work per step, whether to ignore the machine's load.");
    m.def("split_ways", &nc::split_ways, py::arg("work"),
          "Threads an instruction of `work` element updates a step splits over (1: none).");
    m.def("team_counters", &team_counters, "Threads, jobs, worker chunks and stalled runs of the team.");
    m.def("team_selftest", &team_selftest, py::arg("n"), py::arg("jobs") = 1,
          py::arg("throw_at") = -1, py::arg("dynamic") = false, py::arg("spin_ns") = 0,
          py::arg("ways") = 1 << 16);
}
