// Table-driven processes (WhiteSignal, WhiteNoise, PresentInput, Piecewise):
// Python precomputes the values with Nengo's own code; the kernel only picks
// the row for the current step.  Shared by host and device.
#pragma once
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "../common/host_device.h"

namespace nc {
namespace processes {

// Row of a periodic table of `period` rows that WhiteSignal returns at time t:
// signal[int(round(t / dt)) % period] (nearbyint rounds half to even, as round()).
NC_HD int64_t periodic_row(double t, double dt, int64_t period) {
    const int64_t i = static_cast<int64_t>(nearbyint(t / dt)) % period;
    return i < 0 ? i + period : i;
}

// Where each operator's rows lie in a table of `size` values.  Operator j has
// m[j] values a row and period[j] rows (0: one row per step of the run, a
// number the table's size decides).  Shared operators (the same rows in every
// trial: processes of time alone) come first, once; then, for each trial in
// turn, the blocks of all other operators.  Operator j's row r of trial t is
// at offset[j] + (shared[j] ? 0 : t * per_trial) + r * m[j].  Host only.
struct TableLayout {
    std::vector<int64_t> offset;  // per operator
    int64_t per_trial = 0;        // values of one trial's blocks
    int64_t step_rows = 0;        // rows of the operators with period 0
};

inline TableLayout table_layout(const std::vector<int64_t>& m, const std::vector<int64_t>& period,
                                const std::vector<int64_t>& shared, int64_t n_trials,
                                int64_t size) {
    if (period.size() != m.size() || shared.size() != m.size())
        throw std::invalid_argument("process_table: 'm', 'period' and 'shared' differ in length");
    int64_t fixed = 0, per_row = 0;  // values of periodic blocks; values per step row
    for (size_t j = 0; j < m.size(); ++j) {
        const int64_t copies = shared[j] ? 1 : n_trials;
        if (period[j] > 0) fixed += copies * period[j] * m[j];
        else per_row += copies * m[j];
    }
    if (size < fixed || (per_row == 0 ? size != fixed : (size - fixed) % per_row != 0))
        throw std::invalid_argument("process_table: table of " + std::to_string(size) +
                                    " values does not fit the operators");
    TableLayout layout;
    layout.step_rows = per_row == 0 ? 0 : (size - fixed) / per_row;
    layout.offset.assign(m.size(), 0);
    int64_t off = 0;
    for (int pass = 1; pass >= 0; --pass) {  // shared blocks, then one trial's
        const int64_t trial0 = off;
        for (size_t j = 0; j < m.size(); ++j) {
            if ((shared[j] != 0) != (pass == 1)) continue;
            layout.offset[j] = off;
            off += (period[j] > 0 ? period[j] : layout.step_rows) * m[j];
        }
        if (pass == 0) layout.per_trial = off - trial0;
    }
    return layout;
}

}  // namespace processes
}  // namespace nc
