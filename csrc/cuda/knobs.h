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

}  // namespace nc
