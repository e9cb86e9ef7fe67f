// Splitting one instruction's work over the threads of a run (team.h): only
// when there is enough work to pay for handing it out.
#pragma once
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <thread>

#include <pthread.h>

#include "team.h"
#ifdef _OPENMP
#include <omp.h>
#endif

namespace nc {

// The calling thread's run and the team: `may_split` while a plain-loop run
// has not yet asked for the team (TeamScope), `held` once it got it.  Both
// empty: instructions run serially on this thread (as in the threads of the
// trial-parallel loop).
struct RunTeam {
    bool may_split = false;
    Team* held = nullptr;
};

inline RunTeam& run_team() {
    static thread_local RunTeam state;
    return state;
}

// Cores this process may run on (OpenMP: its CPU affinity mask).
inline int available_cores() {
#ifdef _OPENMP
    return omp_get_num_procs();
#else
    return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
#endif
}

// Threads a run may use: OMP_NUM_THREADS (OpenMP's limit) where OpenMP is
// built in, else every core.
inline int max_run_threads() {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return available_cores();
#endif
}

// libgomp's thread pool does not survive fork(): in the child of a process
// that opened an OpenMP parallel region (nengo_cuda's, or any other library's
// on the same libgomp), the next region waits forever for the parent's
// threads (multiprocessing's default start method on Linux).  A forked child
// therefore runs its trials on the calling thread (runner.h): `watch_forks`,
// called when the module loads, marks every child of this process.
inline std::atomic<bool>& in_forked_child() {
    static std::atomic<bool> forked{false};
    return forked;
}

inline void watch_forks() {
    static const bool registered =
        pthread_atfork(nullptr, nullptr, [] { in_forked_child().store(true); }) == 0;
    (void)registered;
}

inline bool openmp_regions_allowed() { return !in_forked_child().load(); }

// When instructions split their work over the team: at least `min_work`
// simple element updates per step (a multiply-add, a copy; a neuron update
// counts as several).  Handing out a job costs about a microsecond, but the
// next instructions then read what other cores wrote (on the 2-core machine
// of docs/benchmarks.md a cache-line transfer costs ~100 ns), so a split pays
// only for instructions of tens of microseconds: measured at minibatch 1, a
// 25000-neuron group and 400k-multiply-add products (chain 50 x 500 x 16)
// ran 2.2x faster on 2 threads, 16000 neurons of 100-neuron ensembles (basal
// ganglia 100 x 32) 10 % slower.  `ignore_load` uses the team on a busy
// machine too (tests).
struct SplitPolicy {
    std::atomic<int64_t> min_work{int64_t{1} << 17};
    std::atomic<bool> ignore_load{false};
};

inline SplitPolicy& split_policy() {
    static SplitPolicy policy;
    return policy;
}

// Threads that `work` element updates a step are worth (1: serial): from
// min_work on, one per min_work / 2, so that each thread of a large machine
// gets tens of microseconds of work (at the threshold, 2 threads).
inline int split_ways(int64_t work) {
    const int64_t min_work = split_policy().min_work.load(std::memory_order_relaxed);
    if (work < min_work) return 1;
    const int64_t ways = work / std::max<int64_t>(min_work / 2, 1);
    return static_cast<int>(std::clamp<int64_t>(ways, 2, 1 << 16));
}

// Threads of other processes running now (Linux: /proc/loadavg's count of
// runnable threads, less the caller and `own` threads of this process that
// are running too); 0 where unknown.  Instantaneous, unlike the load
// average, which our own spinning team would raise for a minute.
inline int other_running_threads(int own) {
    int running = 0, total = 0;
    if (FILE* f = std::fopen("/proc/loadavg", "r")) {
        if (std::fscanf(f, "%*f %*f %*f %d/%d", &running, &total) != 2) running = 0;
        std::fclose(f);
    }
    return std::max(running - 1 - own, 0);
}

// The scope of a plain-loop run, in which instructions may split their work
// over the team.  The team spins between instructions, so it is taken at the
// first split (a run with no instruction that large pays nothing) and only
// when another core is idle then; if other processes take the cores later in
// the run (a job waits for a descheduled worker, Team::stalled), the run goes
// on serially.  OMP_NUM_THREADS=1 turns splitting off for good.
class TeamScope {
  public:
    TeamScope() {
        RunTeam& r = run_team();
        owner_ = !r.may_split && r.held == nullptr;  // else: a run in a callback of a run
        if (owner_) r.may_split = max_run_threads() > 1;
    }
    ~TeamScope() {
        if (!owner_) return;
        RunTeam& r = run_team();
        if (r.held != nullptr) r.held->release();
        r = RunTeam{};
    }
    TeamScope(const TeamScope&) = delete;
    TeamScope& operator=(const TeamScope&) = delete;

  private:
    bool owner_ = false;
};

// The team for a split now, or null: taken on the run's first split (one try).
inline Team* split_team() {
    RunTeam& r = run_team();
    if (r.held != nullptr) return r.held->stalled() ? nullptr : r.held;
    if (!r.may_split) return nullptr;
    r.may_split = false;
    Team& team = Team::instance(max_run_threads());
    if (!split_policy().ignore_load.load() &&
        other_running_threads(team.spinning()) >= available_cores() - 1)
        return nullptr;
    if (team.acquire()) r.held = &team;
    return r.held;
}

// Runs the instructions of a scope on this thread alone (the threads of the
// trial-parallel and segmented loops, even when a callback of an outer run
// holds the team on this thread).
class SerialScope {
  public:
    SerialScope() : saved_(run_team()) { run_team() = RunTeam{}; }
    ~SerialScope() { run_team() = saved_; }
    SerialScope(const SerialScope&) = delete;
    SerialScope& operator=(const SerialScope&) = delete;

  private:
    RunTeam saved_;
};

// Runs f(i) for every i in [0, n), independent iterations: split over up to
// `ways` threads of the calling thread's team (split_ways), else in order on
// this thread.  Chunks of iterations are claimed in turn (`dynamic`: one
// iteration at a time, for iterations of uneven cost; else about four chunks
// per thread).
template <typename F>
inline void parallel_for(int64_t n, int ways, F&& f, bool dynamic = false) {
    Team* team = ways > 1 && n > 1 ? split_team() : nullptr;
    if (team != nullptr) {
        auto body = [&f](int64_t begin, int64_t end) {
            for (int64_t i = begin; i < end; ++i) f(i);
        };
        team->run(n, ways, dynamic, body);
        return;
    }
    for (int64_t i = 0; i < n; ++i) f(i);
}

}  // namespace nc
