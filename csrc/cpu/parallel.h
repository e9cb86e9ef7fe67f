// OpenMP helpers: parallelise only when there is enough work to pay for a fork.
#pragma once
#include <cstdint>
#ifdef _OPENMP
#include <omp.h>
#endif

namespace nc {
// Work (in element updates) below which a parallel region costs more than it saves.
constexpr int64_t kParallelMinWork = 1 << 15;
}  // namespace nc

// NC_PARALLEL_FOR(work): put before a `for` loop over independent iterations.
#ifdef _OPENMP
#define NC_PRAGMA(x) _Pragma(#x)
#define NC_PARALLEL_FOR(work) NC_PRAGMA(omp parallel for schedule(static) if ((work) >= ::nc::kParallelMinWork))
#else
#define NC_PARALLEL_FOR(work)
#endif
