// What the bindings' runs (bindings.cpp, cuda/bindings_device.cpp) need to run
// without Python's GIL, so that the process's other Python threads go on and
// Ctrl-C stops a run within a fraction of a second, as it does nengo.Simulator.
//
// A run releases the GIL for its native steps; whatever calls into Python
// during it (callbacks, device memory hooks, signal checks) takes it back.
#pragma once
#include <pybind11/pybind11.h>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>

#include "cpu/stop_checks.h"

namespace nc {

// Runs Python's pending signal handlers (on the main thread: elsewhere
// PyErr_CheckSignals does nothing); one that raised (KeyboardInterrupt)
// stops the run between two steps, its exception propagating as a
// callback's does.
inline void check_python_signals() {
    pybind11::gil_scoped_acquire gil;
    if (PyErr_CheckSignals() != 0) throw pybind11::error_already_set();
}

// Called before a run's callback takes the GIL.  A run whose callbacks come
// microseconds apart takes the GIL back before a thread that its release woke
// can: CPython's waiter asks for a switch only after 5 ms without one, and
// each take counts as one, so another Python thread (a progress bar's, a
// GUI's) waited up to seconds.  Once every kGilShareSeconds the run waits
// briefly without the GIL first, letting a waiter take it.
inline void share_gil_now_and_then() {
    using Clock = std::chrono::steady_clock;
    constexpr auto kGilShareSeconds = std::chrono::milliseconds(5);
    thread_local Clock::time_point last = Clock::now();
    const auto now = Clock::now();
    if (now - last < kGilShareSeconds) return;
    std::this_thread::sleep_for(std::chrono::microseconds(100));
    last = Clock::now();
}

// Another thread's request to stop a program's run (nengo_cuda's atexit hook:
// Python 3.11's finalization ends a thread that waits for the GIL with a
// forced unwind, which aborts the process in the run's noexcept destructors),
// checked between two slices before the signal check takes the GIL; the run
// then ends there as a stopped one does.  Cleared when a run ends, so that a
// request made just before a run starts still stops it.
class StopRequest {
  public:
    void request() { requested_.store(true); }
    void clear() { requested_.store(false); }
    void check() const {
        if (requested_.load())
            throw std::runtime_error(
                "the run was stopped: Python is exiting (nengo_cuda stops native runs at exit)");
    }
    // The stop check of a run (cpu/stop_checks.h): this request, then Python's signals.
    StopCheck stop_check() const {
        return [this] {
            check();
            check_python_signals();
        };
    }

  private:
    std::atomic<bool> requested_{false};
};

// A program's run in progress, for a scope (entered and left with the GIL
// held).  While the GIL is released, another thread may call the program:
// whatever would change or free what the run uses (adding instructions,
// replacing tables, closing, another run) refuses (check_idle).
// Its end clears the program's stop request (StopRequest).
class RunningScope {
  public:
    RunningScope(bool& running, StopRequest& stop) : running_(running), stop_(stop) {
        check_idle(running, "run");
        running_ = true;
    }
    ~RunningScope() {
        running_ = false;
        stop_.clear();
    }
    RunningScope(const RunningScope&) = delete;
    RunningScope& operator=(const RunningScope&) = delete;

    static void check_idle(bool running, const char* what) {
        if (running)
            throw std::runtime_error(std::string("cannot ") + what +
                                     " the native program while it runs (from another thread "
                                     "or a callback of the run)");
    }

  private:
    bool& running_;
    StopRequest& stop_;
};

}  // namespace nc
