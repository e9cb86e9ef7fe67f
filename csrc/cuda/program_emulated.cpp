// The device program run on the host: the same kernel bodies (device_kernels.h)
// and host logic (device_program.h) as the GPU build, with host memory standing
// in for device memory and a list of closures standing in for a CUDA graph.
//
// Logical threads run in reverse order (NC_EMU_ORDER: forward, or shuffled
// anew each launch) and every pool access is bounds-checked, so a kernel that
// depends on its threads' order, or reads outside the pools, fails the
// comparison with the CPU backend (tests/test_cuda_*.py) instead of passing by
// luck.  Built always, with or without nvcc.
//
// Work outside a capture is queued, as on a CUDA stream, and runs at sync():
// a copy reads or writes its host buffer then, as cudaMemcpyAsync may with
// page-locked memory (or where the GPU reads pageable memory directly).  A
// host source that changed before its copy ran (a temporary gone out of
// scope, a buffer written too early) raises instead of uploading garbage.
#define NC_DEV_NS emu
#define NC_DEV_CHECKED 1

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <new>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

#include "knobs.h"
#include "phases.h"

namespace nc {
namespace emu {

// The order the emulator runs a launch's logical threads (and tiles) in, as
// k -> order[k] for k = 0 .. n - 1.  Reverse by default, so that a thread
// relying on a lower-numbered one having run first shows.  NC_EMU_ORDER=
// forward shows a thread relying on a higher-numbered one; shuffle, a new
// permutation each launch (k -> (a k + c) mod n, a coprime to n), shows any
// other dependence: the GPU promises no order at all.
class ThreadOrder {
  public:
    explicit ThreadOrder(int64_t n) : n_(n) {
        const char* env = std::getenv("NC_EMU_ORDER");
        const std::string mode = env ? env : "";
        if (mode.empty() || mode == "reverse") {
            reverse_ = true;
        } else if (mode == "forward") {
            a_ = 1;
        } else if (mode == "shuffle") {
            static thread_local uint64_t launches = 0;
            uint64_t h = ++launches * 0x9E3779B97F4A7C15ull;  // (splitmix64's finalizer)
            h = (h ^ (h >> 30)) * 0xBF58476D1CE4E5B9ull;
            h = (h ^ (h >> 27)) * 0x94D049BB133111EBull;
            h ^= h >> 31;
            if (n > 1) {
                c_ = static_cast<int64_t>(h % static_cast<uint64_t>(n));
                a_ = 1 + static_cast<int64_t>((h >> 32) % static_cast<uint64_t>(n - 1));
                while (std::gcd(a_, n) != 1) ++a_;
            }
        } else {
            throw std::invalid_argument("NC_EMU_ORDER must be reverse, forward or shuffle, not '" +
                                        mode + "'");
        }
    }
    int64_t operator[](int64_t k) const {
        if (reverse_) return n_ - 1 - k;
        return static_cast<int64_t>((static_cast<unsigned __int128>(a_) * k + c_) % n_);
    }

  private:
    int64_t n_, a_ = 1, c_ = 0;
    bool reverse_ = false;
};

class Exec {
  public:
    struct Graph {
        std::vector<std::function<void()>> ops;
    };

    // (the GPU's knobs are read as there, so that a bad value fails alike)
    explicit Exec(int) {
        env_knob(knobs::kPdl);
        env_knob(knobs::kPhaseBlocks);
    }
    bool pdl() const { return false; }  // no launches to overlap
    template <class T>
    int phase_blocks() const {
        return 1;  // phases in order, as in one block
    }
    void enter(uint64_t) {}
    void leave(uint64_t) {}

    template <class F>
    void for_each(int64_t n, const F& f) {
        if (n <= 0) return;
        submit([n, f]() {
            const ThreadOrder order(n);
            for (int64_t k = 0; k < n; ++k) f(order[k]);
        });
    }

    // Phases in order, each phase's indices in ThreadOrder (see phases.h).
    template <class T>
    void phases(const PhaseList& list) {
        if (list.n <= 0) return;
        submit([list]() {
            for (int k = 0; k < list.n; ++k) {
                const ThreadOrder order(list.d[k].n);
                for (int64_t i = 0; i < list.d[k].n; ++i)
                    run_phase<T>(list.d[k], order[i], list.d[k].n);
            }
        });
    }

    // The tiled mat-vec, phase by phase as the CUDA kernel runs it: partial
    // sums, the lanes' butterfly exchange (own value plus partner's, as
    // __shfl_xor_sync adds them), writes.
    template <class T, int TT, class Epi = NoEpilogue>
    void dot(const DotParams<T>& q, int64_t n_tiles, const Epi& epi = Epi()) {
        if (n_tiles <= 0) return;
        submit([q, n_tiles, epi]() {
            std::vector<T> acc(static_cast<size_t>(kDotThreads) * TT), old;
            const ThreadOrder tiles(n_tiles);
            for (int64_t k = 0; k < n_tiles; ++k) {
                const int64_t tile = tiles[k];
                // (__shfl_xor_sync exchanges within a warp: a row's lanes
                // must be a power of two that divides the warp)
                const int g = q.tile_g[tile];
                if (g < 1 || g > 32 || (g & (g - 1)) != 0 ||
                    int64_t(q.tile_nslot[tile]) * g > kDotThreads)
                    throw std::logic_error("emulated device: a mat-vec tile of " +
                                           std::to_string(q.tile_nslot[tile]) + " rows of " +
                                           std::to_string(g) + " lanes");
                const ThreadOrder threads(kDotThreads);
                for (int j = 0; j < kDotThreads; ++j) {
                    const int tid = static_cast<int>(threads[j]);
                    dot_partial<T, TT>(q, tile, tid, &acc[tid * TT]);
                }
                for (int m = g / 2; m > 0; m /= 2) {
                    old = acc;
                    for (int tid = kDotThreads - 1; tid >= 0; --tid)
                        for (int tt = 0; tt < TT; ++tt)
                            acc[tid * TT + tt] = old[tid * TT + tt] + old[(tid ^ m) * TT + tt];
                }
                for (int j = 0; j < kDotThreads; ++j) {
                    const int tid = static_cast<int>(threads[j]);
                    dot_write<T, TT>(q, tile, tid, &acc[tid * TT], epi);
                }
            }
        });
    }

    // Dense tiles' shared memory: `stages` buffers of `bytes` each, as the GPU
    // launch may take; one buffer serves one chunk only.
    static void check_stages(int stages, size_t bytes) {
        if (stages < 1 || stages > kDenseStagesMax || stages * bytes > kDenseSmemBudget)
            throw std::logic_error("emulated device: dense tiles with " + std::to_string(stages) +
                                   " stages of " + std::to_string(bytes) + " bytes");
    }
    static void check_ring(int stages, int64_t n_chunks) {
        if (stages == 1 && n_chunks > 1)  // (chunk 1 would overwrite chunk 0)
            throw std::logic_error("emulated device: one dense stage for several chunks");
    }
    // A tile's shared memory, aligned no more than the GPU's is (16 bytes,
    // program_cuda.cuh), so that dense_load's alignment check means there
    // what it means here.
    template <class T>
    struct SmemAlloc {
        using value_type = T;
        static constexpr std::align_val_t kAlign{16};
        SmemAlloc() = default;
        template <class U>
        SmemAlloc(const SmemAlloc<U>&) {}
        T* allocate(size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), kAlign)); }
        void deallocate(T* p, size_t) { ::operator delete(p, kAlign); }
        bool operator==(const SmemAlloc&) const { return true; }
        bool operator!=(const SmemAlloc&) const { return false; }
    };
    template <class T>
    using Smem = std::vector<T, SmemAlloc<T>>;

    // Stage buffer `buf`, poisoned with NaN before a chunk is staged into it, so
    // that a sum reading anything not staged, or another chunk's buffer, shows.
    template <class T>
    static void poison(Smem<T>& smem, int buf, int elems) {
        std::fill(smem.begin() + buf * elems, smem.begin() + (buf + 1) * elems,
                  std::numeric_limits<T>::quiet_NaN());
    }

    // What the block barriers of a dense tile must order on the GPU, where the
    // emulator runs every thread's share of a step at once: a stage buffer is
    // staged again only after a barrier since its last sum (every thread is
    // done with it), and summed only after a barrier since it was staged
    // (every thread's copies are in: a thread's dense_wait covers its own).
    struct BarrierLog {
        int64_t barriers = 0;
        std::vector<int64_t> staged, summed;  // per buffer: barriers before its last stage, sum
        explicit BarrierLog(int stages) : staged(stages, -1), summed(stages, -1) {}
    };

    // Every thread's share of a dense tile for dense_schedule, in the CUDA
    // kernel's order: every thread stages its share of a chunk (into a buffer
    // poisoned first), every thread sums one.  thread(tid, sums or null) gives
    // that thread's worker (DenseThread, ConvDenseThread).
    template <class T, class MakeThread>
    struct AllThreads {
        MakeThread thread;
        int elems, n_acc;  // a stage buffer's elements; sums a thread
        Smem<T>& smem;
        std::vector<T>& acc;
        BarrierLog& log;
        void stage(int64_t k, int buf) const {
            if (log.summed[buf] >= 0 && log.summed[buf] == log.barriers)
                throw std::logic_error("emulated device: a dense stage buffer staged again "
                                       "without a barrier since it was summed");
            log.staged[buf] = log.barriers;
            poison(smem, buf, elems);
            const ThreadOrder threads(kDotThreads);
            for (int j = 0; j < kDotThreads; ++j) thread(int(threads[j]), nullptr).stage(k, buf);
        }
        void sum(int64_t k, int buf) const {
            if (log.staged[buf] < 0 || log.staged[buf] == log.barriers)
                throw std::logic_error("emulated device: a dense stage buffer summed without "
                                       "a barrier since it was staged");
            log.summed[buf] = log.barriers;
            const ThreadOrder threads(kDotThreads);
            for (int j = 0; j < kDotThreads; ++j) {
                const int tid = static_cast<int>(threads[j]);
                thread(tid, &acc[tid * n_acc]).sum(k, buf);
            }
        }
        void barrier() const { ++log.barriers; }
    };
    template <class T, class MakeThread>
    static void dense_tile(int64_t n_chunks, int stages, int elems, int n_acc,
                           Smem<T>& smem, std::vector<T>& acc, MakeThread thread) {
        check_ring(stages, n_chunks);
        std::fill(acc.begin(), acc.end(), T(0));
        EmulatedCopies& copies = emulated_copies();
        copies = EmulatedCopies();
        BarrierLog log(stages);
        dense_schedule(n_chunks, stages,
                       AllThreads<T, MakeThread>{thread, elems, n_acc, smem, acc, log});
        if (!copies.idle())
            throw std::logic_error("emulated device: a dense tile ended with copies in flight");
    }

    // The dense mat-vec (kernel_dense_dot.h), tile by tile.
    template <class T, int TPT, class Epi = NoEpilogue>
    void dense_dot(const DotParams<T>& q, int64_t n_tiles, const Epi& epi = Epi()) {
        if (n_tiles <= 0) return;
        submit([q, n_tiles, epi]() {
            const int stages = q.dense_stages, elems = dense_stage_elems<T>(q.dense_rt, TPT);
            check_stages(stages, elems * sizeof(T));
            Smem<T> smem(static_cast<size_t>(stages) * elems);
            std::vector<T> acc(static_cast<size_t>(kDotThreads) * TPT);
            const ThreadOrder tiles(n_tiles);
            for (int64_t k = 0; k < n_tiles; ++k) {
                const int64_t tile = tiles[k];
                const int64_t nc = q.cols[q.slot_block[q.tile_slot0[tile]]];
                dense_tile((nc + kDenseCols<T> - 1) / kDenseCols<T>, stages, elems, TPT, smem, acc,
                           [&](int tid, T* sums) {
                               return DenseThread<T, TPT>{q, tile, nc, tid, elems, smem.data(), sums};
                           });
                const ThreadOrder threads(kDotThreads);
                for (int j = 0; j < kDotThreads; ++j) {
                    const int tid = static_cast<int>(threads[j]);
                    dense_write<T, TPT>(q, tile, tid, &acc[tid * TPT], epi);
                }
            }
        });
    }

    // A dense convolution (kernel_conv_dense.h), tile by tile.
    template <class T, int TPT>
    void conv_dense(const ConvDense<T>& d, int64_t n_tiles) {
        if (n_tiles <= 0) return;
        submit([d, n_tiles]() {
            constexpr int A = kConvDenseFpt * TPT;  // sums a thread
            const int elems = conv_dense_stage_elems<T>(d.fn, TPT);
            check_stages(d.stages, elems * sizeof(T));
            Smem<T> smem(static_cast<size_t>(d.stages) * elems);
            std::vector<T> acc(static_cast<size_t>(kDotThreads) * A);
            const ThreadOrder tiles(n_tiles);
            for (int64_t k = 0; k < n_tiles; ++k) {
                const typename ConvDense<T>::Tile tl = d.tile_at(tiles[k]);
                dense_tile(d.chunks(tl), d.stages, elems, A, smem, acc, [&](int tid, T* sums) {
                    return ConvDenseThread<T, TPT>{d, tl, tid, elems, smem.data(), sums};
                });
                const ThreadOrder threads(kDotThreads);
                for (int j = 0; j < kDotThreads; ++j) {
                    const int tid = static_cast<int>(threads[j]);
                    conv_dense_write<T, TPT>(d, tl, tid, &acc[tid * A]);
                }
            }
        });
    }

    void h2d(uint64_t dst, const void* src, size_t bytes) {
        not_capturing("a host-to-device copy");
        // what the source held when the copy was issued, to check it at run time
        auto issued = std::make_shared<std::vector<unsigned char>>(
            static_cast<const unsigned char*>(src), static_cast<const unsigned char*>(src) + bytes);
        submit([dst, src, bytes, issued]() {
            if (bytes && std::memcmp(src, issued->data(), bytes) != 0)
                throw std::logic_error(
                    "emulated device: the host source of an asynchronous copy changed before "
                    "the copy ran (it must stay valid until the stream is synchronized)");
            std::memcpy(reinterpret_cast<void*>(dst), src, bytes);
        });
    }
    void d2h(void* dst, uint64_t src, size_t bytes) {
        not_capturing("a device-to-host copy");
        submit([dst, src, bytes]() { std::memcpy(dst, reinterpret_cast<const void*>(src), bytes); });
    }
    void fill(uint64_t dst, int byte, size_t bytes) {
        not_capturing("a memset");
        submit([dst, byte, bytes]() { std::memset(reinterpret_cast<void*>(dst), byte, bytes); });
    }
    // Runs the queued work in order (the queue is emptied first: after a
    // failure nothing stale runs later).
    void sync() {
        not_capturing("a stream synchronization");
        auto work = std::move(queue_);
        queue_.clear();
        for (auto& op : work) op();
    }
    bool pin(void*, size_t) { return false; }
    void unpin(void*) {}

    std::shared_ptr<Graph> capture(const std::function<void()>& body) {
        auto g = std::make_shared<Graph>();
        recording_ = &g->ops;
        try {
            body();
        } catch (...) {
            recording_ = nullptr;
            throw;
        }
        recording_ = nullptr;
        return g;
    }
    void launch(Graph& g) {
        for (auto& op : g.ops) queue_.push_back(op);
    }
    // Drops what is still queued: Program::close synchronizes first; the
    // destructor does not, and nothing reads the results after it.
    void close() { queue_.clear(); }

    // Timing marks: the host clock, read when the queue reaches the mark (as a
    // CUDA event records when the stream reaches it).
    void reserve_marks(size_t n) {
        if (marks_.size() < n) marks_.resize(n);
    }
    void mark(size_t k) {
        submit([this, k]() { marks_.at(k) = std::chrono::steady_clock::now(); });
    }
    double seconds_between(size_t a, size_t b) {
        return std::chrono::duration<double>(marks_.at(b) - marks_.at(a)).count();
    }

  private:
    std::vector<std::function<void()>>* recording_ = nullptr;

    // A captured step only launches kernels: on a GPU a copy from pageable
    // memory or a synchronization inside a capture ends the capture with an
    // error, which the emulator (recording any operation) would not show.
    void not_capturing(const char* what) const {
        if (recording_)
            throw std::logic_error(std::string("emulated device: ") + what +
                                   " inside a graph capture (a captured step may only launch "
                                   "kernels)");
    }
    std::vector<std::function<void()>> queue_;  // the "stream": issued, not yet run
    std::vector<std::chrono::steady_clock::time_point> marks_;

    void submit(std::function<void()> op) {
        if (recording_)
            recording_->push_back(std::move(op));
        else
            queue_.push_back(std::move(op));
    }
};

}  // namespace emu
}  // namespace nc

#include "device_program.h"

namespace nc {

std::unique_ptr<DeviceProgram<float>> make_emulated_program_f32(const DeviceLayout<float>& lay,
                                                                DeviceHooks hooks) {
    return std::make_unique<emu::Program<float>>(lay, std::move(hooks));
}

std::unique_ptr<DeviceProgram<double>> make_emulated_program_f64(const DeviceLayout<double>& lay,
                                                                 DeviceHooks hooks) {
    return std::make_unique<emu::Program<double>>(lay, std::move(hooks));
}

}  // namespace nc
