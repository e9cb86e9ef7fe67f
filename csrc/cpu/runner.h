// Runs a program of instructions for n steps, with run-time inputs (feeds)
// and probes, without returning to Python except for callback instructions.
#pragma once
#include <chrono>
#include <functional>

#include "parallel.h"
#include "program.h"

namespace nc {

// Overwrites `addrs` with data[trial, run_step, :] right after instruction `after`
// (after == -1: at the start of the step).
template <typename T>
struct Feed {
    int64_t after = -1;
    std::vector<int64_t> addrs;
    const T* data = nullptr;  // (n_trials, n_steps, addrs.size())
};

// After each step where mask[run_step] != 0, copies `addrs` into
// out[trial, sample, :], sample counting up from 0.
template <typename T>
struct ProbeRecord {
    std::vector<int64_t> addrs;
    const uint8_t* mask = nullptr;  // (n_steps,)
    T* out = nullptr;               // (n_trials, n_samples, addrs.size())
    int64_t n_samples = 0;
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

    // Returns the number of steps completed; on an exception `steps_done` holds it.
    void run(int64_t n_steps, std::vector<Feed<T>>& feeds, std::vector<ProbeRecord<T>>& probes) {
        steps_done = 0;
        for (auto& instr : instrs_) instr->refresh(buf);
        refresh_parallel_policy();
        std::vector<int64_t> sample(probes.size(), 0);
        StepInfo info;
        info.dt = dt;
        for (int64_t s = 0; s < n_steps; ++s) {
            info.run_step = s;
            apply_feeds(feeds, -1, n_steps, s);
            for (int64_t i = 0; i < size(); ++i) {
                if (enabled_[i]) {
                    if (profiling) {
                        const auto start = std::chrono::steady_clock::now();
                        instrs_[i]->run(buf, info);
                        seconds[i] += std::chrono::duration<double>(
                                          std::chrono::steady_clock::now() - start)
                                          .count();
                    } else {
                        instrs_[i]->run(buf, info);
                    }
                }
                apply_feeds(feeds, i, n_steps, s);
            }
            for (size_t p = 0; p < probes.size(); ++p) {
                auto& pr = probes[p];
                if (!pr.mask[s]) continue;
                if (sample[p] >= pr.n_samples) throw std::logic_error("probe buffer overflow");
                const int64_t n = static_cast<int64_t>(pr.addrs.size());
                for (int t = 0; t < buf.n_trials; ++t) {
                    T* dst = pr.out + (t * pr.n_samples + sample[p]) * n;
                    for (int64_t k = 0; k < n; ++k) dst[k] = *buf.f.at(pr.addrs[k], t);
                }
                ++sample[p];
            }
            steps_done = s + 1;
        }
    }

    int64_t steps_done = 0;
    // When profiling, seconds[i] accumulates the time spent in instruction i.
    bool profiling = false;
    std::vector<double> seconds;

  private:
    void apply_feeds(std::vector<Feed<T>>& feeds, int64_t after, int64_t n_steps, int64_t s) {
        for (auto& f : feeds) {
            if (f.after != after) continue;
            const int64_t n = static_cast<int64_t>(f.addrs.size());
            for (int t = 0; t < buf.n_trials; ++t) {
                const T* src = f.data + (t * n_steps + s) * n;
                for (int64_t k = 0; k < n; ++k) *buf.f.at(f.addrs[k], t) = src[k];
            }
        }
    }

    std::vector<std::unique_ptr<Instr<T>>> instrs_;
    std::vector<bool> enabled_;
};

}  // namespace nc
