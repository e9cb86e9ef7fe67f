// The floating-point mode of CPU runs: float32 runs treat denormal numbers as
// zero (x86's FTZ and DAZ bits of MXCSR).
//
// Why: a silent neuron's filtered activity decays geometrically and falls below
// float32's smallest normal number (1.2e-38) within a few hundred steps; every
// operation on a denormal then costs about a hundred cycles.  A 1000-neuron
// PES network ran 22 us per step for its first 250 steps and ~50 us from step
// 750 on.  Values below 1.2e-38 are zero at any float32 tolerance.  float64
// runs keep denormals (they come after thousands of steps, and float64 must
// match Nengo to rounding).  Python callbacks run in the caller's mode.
#pragma once

#if defined(__SSE2__) || defined(__x86_64__)
#include <xmmintrin.h>
#define NC_HAVE_MXCSR 1
#endif

namespace nc {

#ifdef NC_HAVE_MXCSR
inline unsigned fp_state() { return _mm_getcsr(); }
inline void set_fp_state(unsigned state) { _mm_setcsr(state); }
constexpr unsigned kFlushDenormals = 0x8040;  // FTZ (bit 15) | DAZ (bit 6)
#else
inline unsigned fp_state() { return 0; }
inline void set_fp_state(unsigned) {}
constexpr unsigned kFlushDenormals = 0;
#endif

// Sets this thread's floating-point mode for a scope, then restores it.
class FpScope {
  public:
    explicit FpScope(unsigned state) : saved_(fp_state()) { set_fp_state(state); }
    ~FpScope() { set_fp_state(saved_); }
    FpScope(const FpScope&) = delete;
    FpScope& operator=(const FpScope&) = delete;

  private:
    unsigned saved_;
};

// The mode of the thread that called the run in progress, for its callbacks.
inline unsigned& caller_fp_state() {
    static thread_local unsigned state = fp_state();
    return state;
}

// For the scope of a run of T-typed pools: the calling thread in the run's mode
// (see above), and its own mode kept for its callbacks (nested runs restore it).
template <typename T>
class RunFpMode {
  public:
    RunFpMode()
        : outer_caller_(caller_fp_state()), caller_(fp_state()), scope_(run_state(caller_)) {
        caller_fp_state() = caller_;
    }
    ~RunFpMode() { caller_fp_state() = outer_caller_; }
    RunFpMode(const RunFpMode&) = delete;
    RunFpMode& operator=(const RunFpMode&) = delete;

  private:
    static unsigned run_state(unsigned caller) {
        return sizeof(T) == 4 ? (caller | kFlushDenormals) : caller;
    }
    unsigned outer_caller_, caller_;
    FpScope scope_;
};

}  // namespace nc
