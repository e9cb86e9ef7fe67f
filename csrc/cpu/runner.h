// Runs a program of instructions for n steps, with run-time inputs (feeds)
// and probes, without returning to Python except for callback instructions.
#pragma once
#include <algorithm>
#include <atomic>
#include <chrono>
#include <exception>
#include <functional>
#include <optional>

#include "fp_mode.h"
#include "parallel.h"
#include "program.h"
#include "stop_checks.h"

namespace nc {

// Runs of consecutive addresses of a list (feeds', probes'): addrs[k0, k0 +
// len) = a0, a0 + 1, ..., all shared or all state, so one copy each (a
// population's neurons are one run, not an address per value: 2-3 ns per
// value element by element).
struct AddressRun {
    int64_t k0, a0, len;
};

inline std::vector<AddressRun> address_runs(const std::vector<int64_t>& addrs,
                                            int64_t n_shared) {
    std::vector<AddressRun> runs;
    for (size_t k = 0; k < addrs.size(); ++k) {
        const int64_t a = addrs[k];
        if (!runs.empty()) {
            AddressRun& r = runs.back();
            const int64_t last = r.a0 + r.len - 1;
            if (a == last + 1 && (a < n_shared) == (last < n_shared)) {
                ++r.len;
                continue;
            }
        }
        runs.push_back({static_cast<int64_t>(k), a, 1});
    }
    return runs;
}

// Overwrites `addrs` with data[trial, run_step, :] right after instruction `after`
// (after == -1: at the start of the step).
template <typename T>
struct Feed {
    int64_t after = -1;
    std::vector<int64_t> addrs;
    const T* data = nullptr;  // (n_trials, n_steps, addrs.size())
    std::vector<AddressRun> runs;  // of addrs (Runner::run plans them)
};

// After each step where mask[run_step] != 0, copies `addrs` into
// out[trial, sample, :], sample counting up from 0.
template <typename T>
struct ProbeRecord {
    std::vector<int64_t> addrs;
    const uint8_t* mask = nullptr;  // (n_steps,)
    T* out = nullptr;               // (n_trials, n_samples, addrs.size())
    int64_t n_samples = 0;
    std::vector<AddressRun> runs;  // of addrs (Runner::run plans them)
};

template <typename T>
class Runner {
  public:
    Buffers<T> buf;
    double dt = 0.001;

    int64_t add(std::unique_ptr<Instr<T>> instr) {
        instrs_.push_back(std::move(instr));
        enabled_.push_back(true);
        seconds.push_back(0.0);
        return static_cast<int64_t>(instrs_.size()) - 1;
    }
    int64_t size() const { return static_cast<int64_t>(instrs_.size()); }
    Instr<T>& instr(int64_t i) {
        if (i < 0 || i >= size()) throw std::out_of_range("no instruction " + std::to_string(i));
        return *instrs_[i];
    }
    void set_enabled(int64_t i, bool on) {
        if (i < 0 || i >= size()) throw std::out_of_range("no instruction " + std::to_string(i));
        enabled_[i] = on;
    }

    // Runs n_steps steps; on an exception `steps_done` holds the steps completed.
    //
    // Trials are independent, so with several trials and threads (and every
    // instruction splitting by trial: no Python callbacks), each thread runs the
    // whole step loop for its own trials, with no synchronisation between steps:
    // one parallel region per slice instead of one per instruction and step.
    // With callbacks, threads meet around each of them (run_segmented).
    //
    // The steps go in slices with a `stop_check` between two (stop_checks.h):
    // at the end of a slice every trial has run the same steps, so a run
    // stopped there (its exception propagates) ran steps_done steps in all.
    void run(int64_t n_steps, std::vector<Feed<T>>& feeds, std::vector<ProbeRecord<T>>& probes) {
        steps_done = 0;
        abort_ = false;
        for (auto& p : probes) p.runs = address_runs(p.addrs, buf.f.n_shared);
        for (auto& f : feeds) f.runs = address_runs(f.addrs, buf.f.n_shared);
        const RunFpMode<T> fp_mode;
        for (auto& instr : instrs_) {
            instr->refresh(buf, shared_changed);
            instr->prepare(dt);
        }
        shared_changed = false;
        const int segmented = segmented_team_size(n_steps);
        const int threads = segmented > 1 ? 1 : trial_team_size(n_steps);
        std::optional<TeamScope> team;
        if (segmented <= 1 && threads <= 1) team.emplace();  // instructions split over the idle cores
        std::vector<int64_t> sample(probes.size(), 0);  // each probe's samples before the slice
        StopChecks checks(stop_check);
        for (int64_t s0 = 0; s0 < n_steps;) {
            const Slice sl{s0, s0 + checks.slice(n_steps - s0), n_steps};
            if (segmented > 1)
                run_segmented(segmented, sl, feeds, probes, sample);
            else if (threads > 1)
                run_parallel(threads, sl, feeds, probes, sample);
            else
                run_chunks(buf, sl, feeds, probes, sample, steps_done);
            count_samples(probes, sl, sample);
            s0 = sl.end;
            if (s0 < n_steps) checks.between(sl.end - sl.begin);
        }
    }

    // Called between slices of a run's steps, on the thread that called run
    // (see StopChecks); throws to stop the run there.
    StopCheck stop_check;

    // Threads for the trial-parallel loop (1: the plain loop): `trial_threads`
    // when set, else as many as OpenMP allows (OMP_NUM_THREADS=1, or a forked
    // child (parallel.h: watch_forks): none).  Unlike
    // the instruction-splitting team (parallel.h) this ignores the machine's load:
    // with no synchronisation between steps, a thread that waits for a core
    // delays only the end of the run, and two threads get more of a busy
    // machine's time than one.
    int trial_team_size(int64_t n_steps) const {
#ifdef _OPENMP
        if (buf.n_trials < 2 || n_steps < 1 || profiling || !all_split_by_trial() ||
            !openmp_regions_allowed())
            return 1;
        const int n = trial_threads > 0 ? trial_threads : omp_get_max_threads();
        return std::max(1, std::min(n, buf.n_trials));
#else
        return 1;
#endif
    }

    // Threads for the segmented loop (run_segmented; 1: the plain loop), for
    // programs with callbacks (instructions that do not split by trial):
    // `trial_threads` when set, else as many as OpenMP allows, each with at
    // least 2 trials and kSegmentStateBytes of their state.  Each step then
    // meets at 2 barriers per callback (~10 us together here, the threads
    // waiting passively): measured on a 20 x 500 x 16 chain with a Python
    // input (165 KB of state a trial), 2 threads were slower at 2-3 trials
    // (+10-20 %), even at 4 and faster from 6 (-15 to -35 %).
    int segmented_team_size(int64_t n_steps) const {
#ifdef _OPENMP
        if (buf.n_trials < 2 || n_steps < 1 || profiling || all_split_by_trial() ||
            !openmp_regions_allowed())
            return 1;
        if (trial_threads > 0) return std::min(trial_threads, buf.n_trials);
        const int64_t state = (buf.f.n_state * int64_t(sizeof(T)) + buf.i.n_state * 8) *
                              buf.n_trials;
        const int64_t by_state = state / kSegmentStateBytes;
        const int64_t n = std::min<int64_t>({omp_get_max_threads(), buf.n_trials / 2, by_state});
        return static_cast<int>(std::max<int64_t>(1, n));
#else
        return 1;
#endif
    }
    static constexpr int64_t kSegmentStateBytes = 320 << 10;

    int trial_threads = 0;

    // Whether Python may have written the shared region since the last run
    // (set through the binding; the first run refreshes every instruction).
    bool shared_changed = true;

    // Trials run together through all steps before the next chunk of trials
    // starts (0: chosen from the state size, see chunk_size).
    int trial_chunk = 0;

    // Trials per chunk.  Trials are independent, so a chunk of trials can run
    // all n steps before the next chunk starts.  Kernels share the loads of
    // weights between trials and pay per-instruction costs once per chunk, so
    // chunks are as large as possible, but a minibatch whose state outgrows
    // the caches (chain 50 x 500 x 16 at 32 trials: 13 MB) streams it from
    // memory every step; there chunks keep about kChunkBytes of state (measured:
    // 16 -> 8 trials per chunk made that network 1.25x faster; smaller chunks
    // were slower everywhere).  Equal chunks, at least kChunkMinTrials trials.
    // Only when every instruction splits by trial (else: all trials at once).
    int chunk_size(int n_trials) const {
        if (trial_chunk > 0) return std::min(trial_chunk, n_trials);
        if (!all_split_by_trial()) return n_trials;
        const int64_t per_trial = buf.f.n_state * int64_t(sizeof(T)) + buf.i.n_state * 8;
        const int64_t fit = std::max<int64_t>(kChunkBytes / std::max<int64_t>(per_trial, 1),
                                              kChunkMinTrials);
        const int64_t chunks = (n_trials + fit - 1) / fit;
        return static_cast<int>((n_trials + chunks - 1) / chunks);
    }
    static constexpr int64_t kChunkBytes = 4 << 20;
    static constexpr int64_t kChunkMinTrials = 4;
    int64_t steps_done = 0;
    // When profiling, seconds[i] accumulates the time spent in instruction i.
    bool profiling = false;
    std::vector<double> seconds;

  private:
    // Steps [begin, end) of a run of n steps (feeds' data holds n).
    struct Slice {
        int64_t begin, end, n;
    };

    // The trials of view `b` in chunks of chunk_size trials, each through the
    // slice's steps (`sample`: each probe's samples before them).
    void run_chunks(const Buffers<T>& b, const Slice& sl, std::vector<Feed<T>>& feeds,
                    std::vector<ProbeRecord<T>>& probes, const std::vector<int64_t>& sample,
                    int64_t& done) {
        const int c = chunk_size(b.n_trials);
        done = sl.end;  // lowered to the steps every trial completed
        for (int t = 0; t < b.n_trials; t += c) {
            int64_t d = sl.begin;
            try {
                run_trials(b.trials(t, std::min(c, b.n_trials - t)), sl, feeds, probes, sample, d);
            } catch (...) {
                done = std::min(done, d);
                throw;
            }
            done = std::min(done, d);
        }
    }

    // The step loop of a program with instructions that need all trials at once
    // (Python callbacks): each thread runs the other instructions on its own
    // trials, and the threads meet at barriers around each such instruction,
    // which the calling thread (the one holding Python's GIL) runs for all
    // trials.  Whether to stop after an error is decided between those two
    // barriers by the calling thread alone, so every thread leaves the loop at
    // the same point (a thread that failed skips its work until then).
    void run_segmented(int threads, const Slice& sl, std::vector<Feed<T>>& feeds,
                       std::vector<ProbeRecord<T>>& probes,
                       const std::vector<int64_t>& first_sample) {
#ifdef _OPENMP
        std::vector<int64_t> done(threads, sl.begin);
        std::vector<std::exception_ptr> errors(threads);
        bool stop = false;
        const unsigned mode = fp_state();
#pragma omp parallel num_threads(threads)
        {
            const FpScope fp(mode);
            const SerialScope serial;  // instructions run on this thread alone
            const int k = omp_get_thread_num();
            const Buffers<T> mine = team_share();
            std::vector<int64_t> sample(first_sample);
            StepInfo info;
            info.dt = dt;
            auto guarded = [&](auto&& work) {
                if (errors[k]) return;
                try {
                    work();
                } catch (...) {
                    errors[k] = std::current_exception();
                }
            };
            for (int64_t s = sl.begin; s < sl.end && !stop; ++s) {
                info.run_step = s;
                guarded([&] { apply_feeds(mine, feeds, -1, sl.n, s); });
                for (int64_t i = 0; i < size() && !stop; ++i) {
                    if (!enabled_[i] || instrs_[i]->splits_by_trial()) {
                        guarded([&] {
                            if (enabled_[i]) instrs_[i]->run(mine, info);
                            apply_feeds(mine, feeds, i, sl.n, s);
                        });
                        continue;
                    }
#pragma omp barrier
#pragma omp master
                    {
                        guarded([&] {
                            instrs_[i]->run(buf, info);
                            apply_feeds(buf, feeds, i, sl.n, s);
                        });
                        stop = std::any_of(errors.begin(), errors.end(),
                                           [](const auto& e) { return bool(e); });
                    }
#pragma omp barrier
                }
                if (stop) break;
                guarded([&] { record_probes(mine, probes, sample, s); });
                if (!errors[k]) done[k] = s + 1;
            }
        }
        finish_team(done, errors);
#endif
    }

    // The slice's steps of the trial-parallel loop: each thread runs its share
    // of the trials through them.
    void run_parallel(int threads, const Slice& sl, std::vector<Feed<T>>& feeds,
                      std::vector<ProbeRecord<T>>& probes, const std::vector<int64_t>& sample) {
        std::vector<int64_t> done(threads, sl.begin);
        std::vector<std::exception_ptr> errors(threads);
#ifdef _OPENMP
        const unsigned mode = fp_state();
#pragma omp parallel num_threads(threads)
        {
            const FpScope fp(mode);
            const SerialScope serial;  // instructions run on this thread alone
            const int k = omp_get_thread_num();
            try {
                run_chunks(team_share(), sl, feeds, probes, sample, done[k]);
            } catch (...) {
                errors[k] = std::current_exception();
                abort_ = true;
            }
        }
#endif
        finish_team(done, errors);
    }

    // Adds the samples each probe took in slice `sl` to `sample`.
    static void count_samples(const std::vector<ProbeRecord<T>>& probes, const Slice& sl,
                              std::vector<int64_t>& sample) {
        for (size_t p = 0; p < probes.size(); ++p)
            for (int64_t s = sl.begin; s < sl.end; ++s) sample[p] += probes[p].mask[s] != 0;
    }

#ifdef _OPENMP
    // The calling thread's share of the trials, in a parallel region.
    Buffers<T> team_share() const {
        const int k = omp_get_thread_num(), n = omp_get_num_threads();
        const int t0 = static_cast<int>(int64_t{buf.n_trials} * k / n);
        const int t1 = static_cast<int>(int64_t{buf.n_trials} * (k + 1) / n);
        return buf.trials(t0, t1 - t0);
    }
#endif

    // After a team's run: the steps every thread completed; the first error.
    void finish_team(const std::vector<int64_t>& done,
                     const std::vector<std::exception_ptr>& errors) {
        steps_done = *std::min_element(done.begin(), done.end());
        for (auto& e : errors)
            if (e) std::rethrow_exception(e);
    }

    // Whether every instruction may run on disjoint views of trials at once.
    bool all_split_by_trial() const {
        return std::all_of(instrs_.begin(), instrs_.end(),
                           [](const auto& instr) { return instr->splits_by_trial(); });
    }

    // The slice's step loop for the trials of view `b` (b.trial0 is their first
    // global trial: feeds and probes index their data by it).
    void run_trials(const Buffers<T>& b, const Slice& sl, std::vector<Feed<T>>& feeds,
                    std::vector<ProbeRecord<T>>& probes, const std::vector<int64_t>& first_sample,
                    int64_t& done) {
        std::vector<int64_t> sample(first_sample);
        StepInfo info;
        info.dt = dt;
        for (int64_t s = sl.begin; s < sl.end && !abort_; ++s) {
            info.run_step = s;
            apply_feeds(b, feeds, -1, sl.n, s);
            for (int64_t i = 0; i < size(); ++i) {
                if (enabled_[i]) {
                    if (profiling) {
                        const auto start = std::chrono::steady_clock::now();
                        instrs_[i]->run(b, info);
                        seconds[i] += std::chrono::duration<double>(
                                          std::chrono::steady_clock::now() - start)
                                          .count();
                    } else {
                        instrs_[i]->run(b, info);
                    }
                }
                apply_feeds(b, feeds, i, sl.n, s);
            }
            record_probes(b, probes, sample, s);
            done = s + 1;
        }
    }

    // Copies the probes sampled at step s, for the trials of view `b`.
    void record_probes(const Buffers<T>& b, std::vector<ProbeRecord<T>>& probes,
                       std::vector<int64_t>& sample, int64_t s) {
        for (size_t p = 0; p < probes.size(); ++p) {
            auto& pr = probes[p];
            if (!pr.mask[s]) continue;
            if (sample[p] >= pr.n_samples) throw std::logic_error("probe buffer overflow");
            const int64_t n = static_cast<int64_t>(pr.addrs.size());
            for (int t = 0; t < b.n_trials; ++t) {
                T* dst = pr.out + ((b.trial0 + t) * pr.n_samples + sample[p]) * n;
                for (const auto& r : pr.runs)
                    std::copy_n(b.f.at(r.a0, t), r.len, dst + r.k0);
            }
            ++sample[p];
        }
    }

    void apply_feeds(const Buffers<T>& b, std::vector<Feed<T>>& feeds, int64_t after,
                     int64_t n_steps, int64_t s) {
        for (auto& f : feeds) {
            if (f.after != after) continue;
            const int64_t n = static_cast<int64_t>(f.addrs.size());
            for (int t = 0; t < b.n_trials; ++t) {
                const T* src = f.data + ((b.trial0 + t) * n_steps + s) * n;
                for (const auto& r : f.runs) std::copy_n(src + r.k0, r.len, b.f.at(r.a0, t));
            }
        }
    }

    std::atomic<bool> abort_{false};

    std::vector<std::unique_ptr<Instr<T>>> instrs_;
    std::vector<bool> enabled_;
};

}  // namespace nc
