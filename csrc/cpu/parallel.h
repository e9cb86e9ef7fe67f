// OpenMP helpers: parallelise only when there is enough work to pay for a fork.
#pragma once
#include <cstdint>
#include <cstdlib>

#include "fp_mode.h"
#ifdef _OPENMP
#include <omp.h>
#endif

namespace nc {

// Whether parallel regions are used at all (see refresh_parallel_policy); per
// thread, so that threads of the trial-parallel runner (runner.h) run their
// instructions serially.
inline bool& parallel_enabled() {
    static thread_local bool enabled = true;
    return enabled;
}

// Called at the start of every run: parallel regions only pay when another
// core is idle.  On a machine whose other processes keep every core busy (1-min
// load average above cores - 1/2, counting this process's own running thread),
// a region waits for each of its threads to be scheduled, which costs more than
// the split saves, so every instruction then runs on one thread.
// OMP_NUM_THREADS=1 turns parallel regions off for good.
inline void refresh_parallel_policy() {
#ifdef _OPENMP
    double load[1];
    const int cores = omp_get_num_procs();
    parallel_enabled() =
        omp_get_max_threads() > 1 && (getloadavg(load, 1) != 1 || load[0] < cores - 0.5);
#endif
}

// Work (in simple element updates per step) below which one thread does it all:
// waking the other threads costs microseconds (they wait passively, see
// nengo_cuda/__init__.py), so only instructions worth over 100 us are split.
constexpr int64_t kParallelMinWork = 1 << 18;

inline bool worth_parallel(int64_t work) { return work >= kParallelMinWork; }

// Runs f(i) for every i in [0, n), independent iterations: on all OpenMP threads
// when `parallel`, else in order on this thread.  The plain branch matters:
// libgomp charges about a microsecond even for a region that `if` keeps serial.
template <typename F>
inline void parallel_for(int64_t n, bool parallel, F&& f, bool dynamic = false) {
#ifdef _OPENMP
    if (parallel && n > 1 && parallel_enabled()) {
        const unsigned mode = fp_state();  // the run's floating-point mode, in every thread
        if (dynamic) {
#pragma omp parallel
            {
                const FpScope fp(mode);
#pragma omp for schedule(dynamic, 1)
                for (int64_t i = 0; i < n; ++i) f(i);
            }
        } else {
#pragma omp parallel
            {
                const FpScope fp(mode);
#pragma omp for schedule(static)
                for (int64_t i = 0; i < n; ++i) f(i);
            }
        }
        return;
    }
#endif
    for (int64_t i = 0; i < n; ++i) f(i);
}

}  // namespace nc
