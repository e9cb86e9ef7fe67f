// The device buffers of a run, kept (and grown) for the next: each probe's
// output (trials x samples x elements, poisoned first where asked), the
// table of the sample each step writes, and each feed's data for the whole
// run, uploaded once.  The run's step counter (RunCtrl) points at them; the
// probe kernels (kernel_io.h) write where it says.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <vector>

#include "device_memory.h"

namespace nc {
namespace NC_DEV_NS {

template <typename T>
class RunBuffers {
  public:
    // Checks that no probe samples more steps than its buffer holds.
    static void check_probes(int64_t n_steps, const std::vector<ProbeRecord<T>>& probes) {
        for (const auto& p : probes) {
            int64_t count = 0;
            for (int64_t s = 0; s < n_steps; ++s) count += p.mask[s] != 0;
            if (count > p.n_samples) throw std::logic_error("probe buffer overflow");
        }
    }

    // Uploads the run's tables and feed data (on the program's stream) and
    // returns the step counter of a run of n_steps that points at them.
    RunCtrl<T> prepare(Program<T>& prog, int64_t n_steps, const std::vector<Feed<T>>& feeds,
                       const std::vector<ProbeRecord<T>>& probes, bool poison) {
        Memory& mem = prog.mem();
        Exec& exec = prog.exec();
        const int64_t nt = prog.n_trials();
        RunCtrl<T> c;
        c.step_base = 0;
        c.n_steps = n_steps;
        // probes: a buffer each, their pointers, sample counts and the sample table
        const size_t np = probes.size();
        if (probe_bufs_.size() < np) probe_bufs_.resize(np);
        std::vector<T*> outs(np);
        std::vector<int64_t> counts(np);
        for (size_t q = 0; q < np; ++q) {
            const size_t bytes = probe_bytes(nt, probes[q]);
            probe_bufs_[q].ensure(mem, bytes);
            if (poison && bytes) exec.fill(probe_bufs_[q].ptr, 0xFF, bytes);
            outs[q] = reinterpret_cast<T*>(probe_bufs_[q].ptr);
            counts[q] = probes[q].n_samples;
        }
        if (np) {
            std::vector<int32_t> table(static_cast<size_t>(n_steps) * np, -1);
            std::vector<int64_t> next(np, 0);
            for (int64_t s = 0; s < n_steps; ++s)
                for (size_t q = 0; q < np; ++q)
                    if (probes[q].mask[s]) table[s * np + q] = static_cast<int32_t>(next[q]++);
            sample_buf_.ensure(mem, table.size() * sizeof(int32_t));
            prog.h2d_staged(sample_buf_.ptr, table.data(), table.size() * sizeof(int32_t));
            probe_ptrs_.ensure(mem, np * sizeof(T*));
            prog.h2d_staged(probe_ptrs_.ptr, outs.data(), np * sizeof(T*));
            probe_counts_.ensure(mem, np * sizeof(int64_t));
            prog.h2d_staged(probe_counts_.ptr, counts.data(), np * sizeof(int64_t));
            c.probe_sample = reinterpret_cast<const int32_t*>(sample_buf_.ptr);
            c.probe_out = reinterpret_cast<T* const*>(probe_ptrs_.ptr);
            c.probe_samples = reinterpret_cast<const int64_t*>(probe_counts_.ptr);
        }
        // feeds: the whole run's data, uploaded once
        const size_t nfd = feeds.size();
        if (feed_bufs_.size() < nfd) feed_bufs_.resize(nfd);
        std::vector<const T*> data(nfd);
        for (size_t f = 0; f < nfd; ++f) {
            const size_t bytes = static_cast<size_t>(nt) * n_steps * feeds[f].addrs.size() * sizeof(T);
            feed_bufs_[f].ensure(mem, bytes);
            if (bytes) exec.h2d(feed_bufs_[f].ptr, feeds[f].data, bytes);
            data[f] = reinterpret_cast<const T*>(feed_bufs_[f].ptr);
        }
        if (nfd) {
            feed_ptrs_.ensure(mem, nfd * sizeof(T*));
            prog.h2d_staged(feed_ptrs_.ptr, data.data(), nfd * sizeof(T*));
            c.feed_data = reinterpret_cast<const T* const*>(feed_ptrs_.ptr);
        }
        return c;
    }

    // Queues the copies of the probe buffers into the probes' host arrays.
    void download_probes(Exec& exec, int64_t n_trials, std::vector<ProbeRecord<T>>& probes) {
        for (size_t q = 0; q < probes.size() && q < probe_bufs_.size(); ++q) {
            const size_t bytes = probe_bytes(n_trials, probes[q]);
            if (bytes && probe_bufs_[q].ptr) exec.d2h(probes[q].out, probe_bufs_[q].ptr, bytes);
        }
    }

  private:
    Growable sample_buf_, probe_ptrs_, probe_counts_, feed_ptrs_;
    std::vector<Growable> probe_bufs_, feed_bufs_;

    static size_t probe_bytes(int64_t n_trials, const ProbeRecord<T>& p) {
        return static_cast<size_t>(n_trials) * p.n_samples * p.addrs.size() * sizeof(T);
    }
};

}  // namespace NC_DEV_NS
}  // namespace nc
