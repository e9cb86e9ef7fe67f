// Checks for a request to stop a run (Python's pending signals: Ctrl-C) at
// step boundaries, about every kCheckSeconds.
//
// A run goes in slices of steps between two checks, each slice sized from the
// time the one before took (a step takes 10 us in one network, 10 ms in
// another): a check is a round trip through Python's GIL, too dear for every
// step of a fast network, and a clock read per step would still leave a
// device run, whose steps the host only queues, unchecked.  The first slice
// is one step; each next one at most kMaxGrowth times the last.
#pragma once
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>

namespace nc {

// Throws to stop the run (the bindings: a Python signal handler raised, e.g.
// KeyboardInterrupt); empty: a run is never stopped (one slice).
using StopCheck = std::function<void()>;

class StopChecks {
  public:
    static constexpr double kCheckSeconds = 0.05;
    static constexpr int64_t kMaxGrowth = 16;

    explicit StopChecks(const StopCheck& check) : check_(check) {}

    // Steps of the next slice, of `left` steps still to run.
    int64_t slice(int64_t left) const { return check_ ? std::min(left, steps_) : left; }

    // Between two slices (the last one ran `steps` steps): sizes the next
    // slice, then checks, which throws to stop the run here.
    void between(int64_t steps) {
        const double took = std::chrono::duration<double>(Clock::now() - start_).count();
        const double fit = std::min(steps * kCheckSeconds / std::max(took, 1e-9),
                                    static_cast<double>(steps) * kMaxGrowth);
        steps_ = std::max<int64_t>(1, static_cast<int64_t>(fit));
        check_();
        start_ = Clock::now();  // (the check's wait for the GIL is no step's time)
    }

  private:
    using Clock = std::chrono::steady_clock;
    const StopCheck& check_;
    int64_t steps_ = 1;
    Clock::time_point start_ = Clock::now();
};

}  // namespace nc
