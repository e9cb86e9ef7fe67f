// OpenMP helpers: parallelise only when there is enough work to pay for a fork.
#pragma once
#include <cstdint>
#ifdef _OPENMP
#include <omp.h>
#endif

namespace nc {

// Work (in simple element updates per step) below which one thread does it all.
// A parallel region costs microseconds even on an idle machine (threads wait
// passively, see nengo_cuda/__init__.py), and on a loaded one the region ends
// only when every thread has been scheduled; so only instructions worth well
// a millisecond of one core's time are split.
constexpr int64_t kParallelMinWork = 1 << 20;

inline bool worth_parallel(int64_t work) { return work >= kParallelMinWork; }

// Runs f(i) for every i in [0, n), independent iterations: on all OpenMP threads
// when `parallel`, else in order on this thread.  The plain branch matters:
// libgomp charges about a microsecond even for a region that `if` keeps serial.
template <typename F>
inline void parallel_for(int64_t n, bool parallel, F&& f, bool dynamic = false) {
#ifdef _OPENMP
    if (parallel && n > 1) {
        if (dynamic) {
#pragma omp parallel for schedule(dynamic, 1)
            for (int64_t i = 0; i < n; ++i) f(i);
        } else {
#pragma omp parallel for schedule(static)
            for (int64_t i = 0; i < n; ++i) f(i);
        }
        return;
    }
#endif
    for (int64_t i = 0; i < n; ++i) f(i);
}

}  // namespace nc
