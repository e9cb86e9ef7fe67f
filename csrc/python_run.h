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

// Lets another Python thread have the GIL now and then during a run's
// callbacks.  A run whose callbacks come microseconds apart takes the GIL back
// before a thread that its release woke can: CPython's waiter asks for a
// switch only after 5 ms without one, and each take counts as one, so another
// Python thread (a progress bar's, a GUI's) waited up to seconds.  So once
// every kEvery, when other Python threads exist, the run waits briefly without
// the GIL before a callback takes it.  One per thread (a run's callbacks run
// on the thread that called the run); its clock starts with each run.
class GilSharing {
  public:
    static GilSharing& of_this_thread() {
        thread_local GilSharing sharing;
        return sharing;
    }
    // A run starts (the GIL held): no pause in its first kEvery (a short run,
    // a `step()`, never counts the threads).
    void start() {
        last_ = Clock::now();
        others_ = false;
        recount_ = false;
    }
    // Before a callback takes the GIL.
    void before_callback() {
        if (Clock::now() - last_ < kEvery) return;
        if (others_) std::this_thread::sleep_for(kPause);
        last_ = Clock::now();
        recount_ = true;
    }
    // In a callback (the GIL held): the threads are counted once per kEvery.
    void in_callback() {
        if (!recount_) return;
        others_ = other_python_threads();
        recount_ = false;
    }

  private:
    using Clock = std::chrono::steady_clock;
    static constexpr auto kEvery = std::chrono::milliseconds(5);
    static constexpr auto kPause = std::chrono::microseconds(50);

    // Whether Python threads besides the main one run (`_thread._count()`;
    // the GIL held).  A run on another thread counts itself: it pauses too.
    static bool other_python_threads() {
        try {
            return pybind11::module_::import("_thread").attr("_count")().cast<int>() > 0;
        } catch (pybind11::error_already_set&) {
            return true;  // (pause: the cost of a wrong guess is small)
        }
    }

    Clock::time_point last_ = Clock::now();
    bool others_ = false;
    bool recount_ = false;
};

// A run's callback: `fn()` with the GIL, shared now and then (GilSharing).
template <typename Fn>
void call_with_gil(Fn&& fn) {
    auto& sharing = GilSharing::of_this_thread();
    sharing.before_callback();
    const pybind11::gil_scoped_acquire gil;
    sharing.in_callback();
    fn();
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
        GilSharing::of_this_thread().start();
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
                                     " the native program while it runs or waits for its device "
                                     "(from another thread or a callback of the run)");
    }

  private:
    bool& running_;
    StopRequest& stop_;
};

// A call that waits for the device without the GIL (replacing a table): a
// wait with the GIL held would never end where the user's stream, which the
// program's stream then follows, holds a host function that takes the GIL.
// Meanwhile the program counts as running: other threads' calls refuse.  (Such
// a call must not destroy Python objects: their references need the GIL.)
class WaitScope {
  public:
    WaitScope(bool& running, const char* what) : running_(running) {
        RunningScope::check_idle(running, what);
        running_ = true;
    }
    ~WaitScope() { running_ = false; }
    WaitScope(const WaitScope&) = delete;
    WaitScope& operator=(const WaitScope&) = delete;

  private:
    bool& running_;
};

}  // namespace nc
