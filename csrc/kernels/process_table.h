// Table-driven processes (WhiteSignal, WhiteNoise, PresentInput, Piecewise):
// Python precomputes the values with Nengo's own code; the kernel only picks
// the row for the current step.  Shared by host and device.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstdlib>
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

// Operator j's row at run step `run_step` (time `now`): periodic (period > 0,
// WhiteSignal), the step's own (period 0: one row per step of the run), or
// indexed (period < 0, PresentInput: -period rows, the one to read at each
// step listed in the `rows` table, rows[run_step * n_indexed + slot]).
NC_HD int64_t table_row(int64_t period, double now, double dt, int64_t run_step,
                        const double* rows, int64_t n_indexed, int64_t slot) {
    if (period > 0) return periodic_row(now, dt, period);
    if (period == 0) return run_step;
    return static_cast<int64_t>(rows[run_step * n_indexed + slot]);
}

// The columns of the `rows` table: per operator its column (indexed
// operators, period < 0, in order) or -1, and how many there are.  Host only.
struct IndexedSlots {
    std::vector<int64_t> slot;
    int64_t n = 0;
};

inline IndexedSlots indexed_slots(const std::vector<int64_t>& period) {
    IndexedSlots s;
    s.slot.assign(period.size(), -1);
    for (size_t j = 0; j < period.size(); ++j)
        if (period[j] < 0) s.slot[j] = s.n++;
    return s;
}

// Checks a `rows` table of `n_indexed` columns (indexed_slots): whole steps,
// each entry a row number of its operator (0 <= r < -period); returns the
// steps it covers.  Host only.
inline int64_t check_table_rows(const std::vector<int64_t>& period,
                                const std::vector<int64_t>& slot, int64_t n_indexed,
                                const std::vector<double>& rows) {
    const int64_t size = static_cast<int64_t>(rows.size());
    if (n_indexed == 0 || size % n_indexed != 0)
        throw std::invalid_argument("process_table: 'rows' of " + std::to_string(size) +
                                    " values for " + std::to_string(n_indexed) +
                                    " indexed operators");
    for (size_t j = 0; j < period.size(); ++j) {
        if (slot[j] < 0) continue;
        for (int64_t i = slot[j]; i < size; i += n_indexed) {
            const double r = rows[i];
            if (!(r >= 0 && r < static_cast<double>(-period[j])) || r != std::floor(r))
                throw std::invalid_argument("process_table: row " + std::to_string(r) +
                                            " of operator " + std::to_string(j) + " is not in [0, " +
                                            std::to_string(-period[j]) + ")");
        }
    }
    return size / n_indexed;
}

// Where each operator's rows lie in a table of `size` values.  Operator j has
// m[j] values a row and period[j] rows (0: one row per step of the run, a
// number the table's size decides; negative: -period[j] rows, indexed).  Shared operators (the same rows in every
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
        if (period[j] != 0) fixed += copies * std::abs(period[j]) * m[j];
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
            off += (period[j] != 0 ? std::abs(period[j]) : layout.step_rows) * m[j];
        }
        if (pass == 0) layout.per_trial = off - trial0;
    }
    return layout;
}

}  // namespace processes
}  // namespace nc
