// Table-driven processes (WhiteSignal, WhiteNoise): Python precomputes the
// random values with Nengo's own code; the kernel only picks the row for the
// current step.  Shared by host and device.
#pragma once
#include <cmath>
#include <cstdint>

#include "../common/host_device.h"

namespace nc {
namespace processes {

// Row of a periodic table of `period` rows that WhiteSignal returns at time t:
// signal[int(round(t / dt)) % period] (nearbyint rounds half to even, as round()).
NC_HD int64_t periodic_row(double t, double dt, int64_t period) {
    const int64_t i = static_cast<int64_t>(nearbyint(t / dt)) % period;
    return i < 0 ? i + period : i;
}

}  // namespace processes
}  // namespace nc
