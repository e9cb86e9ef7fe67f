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
// over 100 us of one core's time are split.
constexpr int64_t kParallelMinWork = 1 << 18;
}  // namespace nc

// NC_PARALLEL_FOR(work): put before a `for` loop over independent iterations.
#ifdef _OPENMP
#define NC_PRAGMA(x) _Pragma(#x)
#define NC_PARALLEL_FOR(work) NC_PRAGMA(omp parallel for schedule(static) if ((work) >= ::nc::kParallelMinWork))
#else
#define NC_PARALLEL_FOR(work)
#endif
