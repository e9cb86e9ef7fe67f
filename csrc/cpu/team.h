// A persistent team of worker threads that split one instruction's work
// (parallel_for, parallel.h) during a run of the plain step loop.
//
// Why not an OpenMP region per instruction: libgomp's fork and join cost
// several microseconds, more with OMP_WAIT_POLICY=PASSIVE (which callbacks
// need, see nengo_cuda/__init__.py), so only instructions worth over 100 us
// were split, and a minibatch-1 run of a large network (chain 50 x 500 x 16:
// 8 instructions of 2-80 us) used one core.  Here the workers spin on one
// atomic word after each job, so handing out the next one costs about a
// cache-line transfer; after kSpinMicros without a job (a long Python
// callback, after a run) they sleep on a condition variable.
//
// Protocol (one job at a time; only the thread holding the team publishes):
//   publish: write the job, then state <- odd (open); wake the sleepers
//            if one of the job's threads sleeps.
//   worker:  sees a new odd state, active += 1, re-reads state (still that
//            job?), runs chunks until none is left, active -= 1.
//   master:  runs chunks too; then state <- even (closed) and waits for
//            active == 0.  A worker that enters after the close sees the
//            closed state (sequentially consistent order of the increment
//            and the close) and leaves without touching the job.
// Chunks: thread k owns the k-th of `size()` equal ranges of chunks and runs
// them first, in order, so that each thread touches the same memory step
// after step (a neuron group's state stays in one core's cache); then it
// takes the chunks left in the other ranges.  Each chunk is claimed once
// through its range's counter, whichever threads show up: a job completes
// even when no worker is scheduled (busy machine, a forked child whose
// workers do not exist).
#pragma once
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include <unistd.h>

#include "fp_mode.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define NC_SPIN_PAUSE() _mm_pause()
#else
#define NC_SPIN_PAUSE() std::this_thread::yield()
#endif

namespace nc {

class Team {
  public:
    // Microseconds a worker spins for the next job before it sleeps.
    static constexpr int64_t kSpinMicros = 300;

    // The process's team of `threads` threads in all (the caller included);
    // made on first use, never destroyed (its workers sleep when unused).
    static Team& instance(int threads) {
        static Team* team = new Team(threads);
        return *team;
    }

    int size() const { return static_cast<int>(workers_.size()) + 1; }

    // Claims the team for the calling thread's run: false when it has no
    // workers, another run holds it (a simulator run from a callback of
    // another), or this process is a fork of the one that made the workers.
    bool acquire() {
        if (workers_.empty() || getpid() != pid_) return false;
        bool expected = false;
        return held_.compare_exchange_strong(expected, true);
    }

    // Jobs handed out and chunks that workers ran, since the process started
    // (tests and benchmarks: was the work split?).
    int64_t jobs() const { return jobs_.load(); }
    int64_t worker_chunks() const { return worker_chunks_.load(); }
    int64_t stalls() const { return stalls_.load(); }
    // Workers spinning for a job now (runnable threads of this process).
    int spinning() const { return spinning_.load(std::memory_order_relaxed); }

    // Whether a job of this run waited over kStallMicros for a worker that
    // had claimed a chunk: the machine's other processes take the cores, and
    // the holder should stop splitting its work for the rest of the run.
    bool stalled() const { return stalled_; }
    static constexpr int64_t kStallMicros = 1000;

    // Ends the run.  Workers keep spinning out their kSpinMicros: the next
    // run often follows at once (sim.step() in a loop is a run per step).
    void release() {
        stalled_ = false;
        held_.store(false, std::memory_order_release);
    }

    // Runs body(begin, end) over [0, n) on the first `ways` threads of the
    // team (the caller holds it; 2 <= ways), in chunks of one iteration
    // (`single`: iterations of uneven cost) or about four chunks per thread;
    // rethrows the first exception of any chunk after all chunks have finished.
    template <typename F>
    void run(int64_t n, int ways, bool single, F& body) {
        const int parts = std::min(ways, size());
        fn_ = [](void* ctx, int64_t b, int64_t e) { (*static_cast<F*>(ctx))(b, e); };
        ctx_ = &body;
        n_ = n;
        chunk_ = single ? 1 : std::max<int64_t>((n + 4 * parts - 1) / (4 * parts), 1);
        fp_mode_ = fp_state();
        error_ = nullptr;
        open_parts_.store(parts, std::memory_order_relaxed);
        const int64_t chunks = (n + chunk_ - 1) / chunk_;
        for (int k = 0; k < parts; ++k) {
            parts_[k].next.store(chunks * k / parts, std::memory_order_relaxed);
            parts_[k].end = chunks * (k + 1) / parts;
        }
        const uint64_t open = state_.load(std::memory_order_relaxed) + 1;
        state_.store(open, std::memory_order_seq_cst);
        // wake the sleepers only when one of this job's threads sleeps
        for (int k = 1; k < parts; ++k) {
            if (asleep_[k].load(std::memory_order_seq_cst)) {
                std::lock_guard<std::mutex> lock(mutex_);
                wake_.notify_all();
                break;
            }
        }
        jobs_.fetch_add(1, std::memory_order_relaxed);
        work_chunks(0);
        state_.store(open + 1, std::memory_order_seq_cst);
        if (active_.load(std::memory_order_seq_cst) != 0) wait_for_workers();
        if (error_) std::rethrow_exception(error_);
    }

  private:
    explicit Team(int threads)
        : pid_(getpid()),
          parts_(std::max(threads, 1)),
          asleep_(new std::atomic<bool>[std::max(threads, 1)]) {
        for (int k = 0; k < std::max(threads, 1); ++k) asleep_[k].store(false);
        for (int k = 1; k < threads; ++k) workers_.emplace_back([this, k] { work(k); });
        for (auto& w : workers_) w.detach();
    }

    // Waits for the workers still in the closed job (one descheduled mid-chunk
    // needs a core: spin briefly, then yield).
    void wait_for_workers() {
        const auto start = std::chrono::steady_clock::now();
        for (int64_t i = 0; active_.load(std::memory_order_seq_cst) != 0; ++i) {
            if (i < 4096) {
                NC_SPIN_PAUSE();
                continue;
            }
            std::this_thread::yield();
            if (!stalled_ && std::chrono::steady_clock::now() - start >
                                 std::chrono::microseconds(kStallMicros)) {
                stalled_ = true;
                stalls_.fetch_add(1, std::memory_order_relaxed);
            }
        }
    }

    // Claims and runs chunks of the open job until none is left: thread k's
    // own range first, then the others'.
    void work_chunks(int k) {
        const int parts = open_parts_.load(std::memory_order_relaxed);
        for (int i = 0; i < parts; ++i) {
            Part& part = parts_[(k + i) % parts];
            for (;;) {
                const int64_t c = part.next.fetch_add(1, std::memory_order_relaxed);
                if (c >= part.end) break;
                if (k != 0) worker_chunks_.fetch_add(1, std::memory_order_relaxed);
                try {
                    fn_(ctx_, c * chunk_, std::min(n_, (c + 1) * chunk_));
                } catch (...) {
                    std::lock_guard<std::mutex> lock(error_mutex_);
                    if (!error_) error_ = std::current_exception();
                }
            }
        }
    }

    void work(int k) {
        uint64_t seen = state_.load(std::memory_order_acquire);
        auto worked = std::chrono::steady_clock::now();
        for (;;) {
            const uint64_t s = wait_for_job(k, seen, worked);
            seen = s;
            // A job for fewer threads (read before the job is checked: a
            // later job's count only makes this thread enter and leave, or
            // skip a job that is closed anyway).
            if (k >= open_parts_.load(std::memory_order_relaxed)) continue;
            active_.fetch_add(1, std::memory_order_seq_cst);
            if (state_.load(std::memory_order_seq_cst) == s) {
                const FpScope fp(fp_mode_);  // the run's floating-point mode
                work_chunks(k);
            }
            active_.fetch_sub(1, std::memory_order_seq_cst);
            worked = std::chrono::steady_clock::now();
        }
    }

    // Worker k spins (up to kSpinMicros after `start`, its last job) for an
    // open state other than `seen`, then sleeps until one of a job it takes
    // part in appears; returns that state.
    uint64_t wait_for_job(int k, uint64_t seen, std::chrono::steady_clock::time_point start) {
        auto is_new_job = [&](uint64_t s) { return s != seen && (s & 1); };
        spinning_.fetch_add(1, std::memory_order_relaxed);
        for (int64_t i = 0;; ++i) {
            const uint64_t s = state_.load(std::memory_order_acquire);
            if (is_new_job(s)) {
                spinning_.fetch_sub(1, std::memory_order_relaxed);
                return s;
            }
            if ((i & 255) == 255 && std::chrono::steady_clock::now() - start >
                                        std::chrono::microseconds(kSpinMicros))
                break;
            NC_SPIN_PAUSE();
        }
        spinning_.fetch_sub(1, std::memory_order_relaxed);
        // (the flag before the state is read, the master's state before the
        // flags: one of the two sees the other's store, so no wake-up is lost)
        std::unique_lock<std::mutex> lock(mutex_);
        asleep_[k].store(true, std::memory_order_seq_cst);
        uint64_t s = 0;
        wake_.wait(lock, [&] {
            s = state_.load(std::memory_order_seq_cst);
            return is_new_job(s) && k < open_parts_.load(std::memory_order_relaxed);
        });
        asleep_[k].store(false, std::memory_order_relaxed);
        return s;
    }

    const pid_t pid_;
    std::vector<std::thread> workers_;
    std::atomic<bool> held_{false};
    bool stalled_ = false;  // the holder's only
    std::atomic<int64_t> jobs_{0}, worker_chunks_{0}, stalls_{0};

    // The open job (written by the master before it opens the state).
    void (*fn_)(void*, int64_t, int64_t) = nullptr;
    void* ctx_ = nullptr;
    int64_t n_ = 0, chunk_ = 1;
    std::atomic<int> open_parts_{1};  // threads 0 .. open_parts_ - 1 take part
    unsigned fp_mode_ = 0;
    std::exception_ptr error_;
    std::mutex error_mutex_;

    // A range of chunks: the next one to claim, the end (own cache lines:
    // claims of different ranges do not contend).
    struct alignas(64) Part {
        std::atomic<int64_t> next{0};
        int64_t end = 0;
    };
    std::vector<Part> parts_;

    // Written by the workers and the master: apart, so the spinning readers of
    // state_ do not share its cache line with the counters.
    alignas(64) std::atomic<uint64_t> state_{0};  // odd: a job is open
    alignas(64) std::atomic<int> active_{0};
    std::unique_ptr<std::atomic<bool>[]> asleep_;  // worker k waits on wake_
    std::atomic<int> spinning_{0};
    std::mutex mutex_;
    std::condition_variable wake_;
};

}  // namespace nc
