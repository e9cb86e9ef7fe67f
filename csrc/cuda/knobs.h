// Tuning knobs of the device backend, read from the environment when a
// program loads (benchmarks/device_sweep.py sets them; docs/cuda.md lists them).
#pragma once
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string>

namespace nc {

// The integer value of environment variable `name`: `fallback` when unset or
// empty; an error naming the variable when not an integer in [lo, hi].
inline int64_t env_knob(const char* name, int64_t fallback, int64_t lo, int64_t hi) {
    const char* v = std::getenv(name);
    if (!v || !*v) return fallback;
    char* end = nullptr;
    const long long x = std::strtoll(v, &end, 10);
    if (*end != '\0' || x < lo || x > hi)
        throw std::invalid_argument(std::string(name) + "='" + v + "': expected an integer in [" +
                                    std::to_string(lo) + ", " + std::to_string(hi) + "]");
    return x;
}

// A tuning knob: its variable, its value when unset, the range it accepts.
struct Knob {
    const char* name;
    int64_t fallback, lo, hi;
};

// Every knob of the device program, with its default: changing a default is a
// change here (docs/cuda.md "Tuning knobs" lists them; a test checks that
// table against device_knobs()).
namespace knobs {
constexpr Knob kDotDense{"NC_DOT_DENSE", 0, 0, 2};
constexpr Knob kDotDenseTrials{"NC_DOT_DENSE_TRIALS", 0, 0, 8};
constexpr Knob kDotColsPerLane{"NC_DOT_COLS_PER_LANE", 16, 1, 1 << 20};
constexpr Knob kDotTrials{"NC_DOT_TRIALS", 8, 1, 8};
constexpr Knob kNeuronTrials{"NC_NEURON_TRIALS", 1, 1, 8};
constexpr Knob kNeuronDefer{"NC_NEURON_DEFER", 0, 0, 1};
constexpr Knob kDotMinTiles{"NC_DOT_MIN_TILES", 0, 0, int64_t(1) << 40};
constexpr Knob kConvMinThreads{"NC_CONV_MIN_THREADS", 0, 0, int64_t(1) << 40};
constexpr Knob kConvDense{"NC_CONV_DENSE", 0, 0, 2};
constexpr Knob kPhaseBlocks{"NC_PHASE_BLOCKS", 1, 0, 1 << 16};
constexpr Knob kPdl{"NC_PDL", 1, 0, 1};
constexpr Knob kFuseNeurons{"NC_FUSE_NEURONS", 0, 0, 1};
constexpr Knob kFuseFilters{"NC_FUSE_FILTERS", 0, 0, 1};
constexpr Knob kPhaseMax{"NC_PHASE_MAX", 256, 0, int64_t(1) << 20};
constexpr Knob kAll[] = {kDotDense,      kDotDenseTrials, kDotColsPerLane, kDotTrials,
                         kNeuronTrials,  kNeuronDefer,    kDotMinTiles,    kConvMinThreads,
                         kConvDense,     kPhaseBlocks,    kPdl,            kFuseNeurons,
                         kFuseFilters,   kPhaseMax};
}  // namespace knobs

inline int64_t env_knob(const Knob& k) { return env_knob(k.name, k.fallback, k.lo, k.hi); }

}  // namespace nc
