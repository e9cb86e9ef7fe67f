// What the bindings' runs (bindings.cpp, cuda/bindings_device.cpp) need to run
// without Python's GIL, so that the process's other Python threads go on and
// Ctrl-C stops a run within a fraction of a second, as it does nengo.Simulator.
//
// A run releases the GIL for its native steps; whatever calls into Python
// during it (callbacks, device memory hooks, signal checks) takes it back.
#pragma once
#include <pybind11/pybind11.h>

#include <stdexcept>
#include <string>

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

// A program's run in progress, for a scope (entered and left with the GIL
// held).  While the GIL is released, another thread may call the program:
// whatever would change or free what the run uses (adding instructions,
// replacing tables, closing, another run) refuses (check_idle).
class RunningScope {
  public:
    explicit RunningScope(bool& running) : running_(running) {
        check_idle(running, "run");
        running_ = true;
    }
    ~RunningScope() { running_ = false; }
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
};

}  // namespace nc
