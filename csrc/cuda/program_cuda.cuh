// The device program on a CUDA GPU: kernels (device_kernels.h) launched on a
// stream of our own, steps captured into CUDA graphs and replayed.  Included by
// program_cuda_f32.cu and program_cuda_f64.cu (one dtype each, so that nvcc
// compiles them in parallel).
//
// Ordering with the caller: every call that touches the device first makes our
// stream wait for the caller's stream (CuPy's current stream, passed as an
// integer) and finally makes the caller's stream wait for ours, so memory that
// CuPy hands out or takes back is never used by both at once.  Graph capture
// needs a stream other than the legacy default one, hence our own stream.
#pragma once
#define NC_DEV_NS gpu

#include <cooperative_groups.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <climits>
#include <functional>
#include <memory>
#include <vector>

#include "cuda_check.h"
#include "knobs.h"
#include "phases.h"

namespace nc {
namespace gpu {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 1 << 16;

// Programmatic dependent launch (NC_PDL, 1 by default; compute capability 9.0 and newer):
// a kernel may start while the one before it in the stream finishes.  Every
// kernel first waits for the previous grid's completion and memory
// (griddepcontrol.wait; immediate for a kernel launched without the
// attribute) and then lets the next one launch, so the effects keep their
// order and only the launch latency overlaps.
__device__ __forceinline__ void follow_previous_grid() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

template <class F>
__global__ void for_each_kernel(F f, int64_t n) {
    follow_previous_grid();
    const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
    for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
         i += stride)
        f(i);
}

// One thread block per tile; see dot_* in device_kernels.h.  Every thread of a
// warp reaches the exchange (threads without a row hold zeros), as the full
// shuffle mask requires.
template <class T, int TT, class Epi>
__global__ void __launch_bounds__(kDotThreads) dot_kernel(DotParams<T> q, Epi epi) {
    follow_previous_grid();
    const int64_t tile = blockIdx.x;
    const int tid = threadIdx.x;
    T acc[TT];
    dot_partial<T, TT>(q, tile, tid, acc);
    const int g = q.tile_g[tile];
    for (int m = g / 2; m > 0; m /= 2) {
#pragma unroll
        for (int tt = 0; tt < TT; ++tt) acc[tt] += __shfl_xor_sync(0xffffffffu, acc[tt], m);
    }
    dot_write<T, TT>(q, tile, tid, acc, epi);
}

// One thread block per dense tile; see dense_* in kernel_dense_dot.h.  The
// chunks go through a ring of q.dense_stages buffers of dynamic shared memory
// (dense_schedule).
template <class T, int TPT, class Epi>
__global__ void __launch_bounds__(kDotThreads) dense_dot_kernel(DotParams<T> q, Epi epi) {
    follow_previous_grid();
    extern __shared__ __align__(16) unsigned char dense_smem_bytes[];
    T* const smem = reinterpret_cast<T*>(dense_smem_bytes);
    const int64_t tile = blockIdx.x;
    const int tid = threadIdx.x;
    T acc[TPT];
#pragma unroll
    for (int k = 0; k < TPT; ++k) acc[k] = T(0);
    const int64_t nc = q.cols[q.slot_block[q.tile_slot0[tile]]];
    const DenseThread<T, TPT> w{q, tile, nc, tid, dense_stage_elems<T>(q.dense_rt, TPT), smem, acc};
    dense_schedule((nc + kDenseCols<T> - 1) / kDenseCols<T>, q.dense_stages, w);
    dense_write<T, TPT>(q, tile, tid, acc, epi);
}

// One thread block per dense convolution tile; see kernel_conv_dense.h.
template <class T, int TPT>
__global__ void __launch_bounds__(kDotThreads) conv_dense_kernel(ConvDense<T> d) {
    follow_previous_grid();
    extern __shared__ __align__(16) unsigned char conv_smem_bytes[];
    T acc[kConvDenseFpt * TPT];
#pragma unroll
    for (int k = 0; k < kConvDenseFpt * TPT; ++k) acc[k] = T(0);
    const typename ConvDense<T>::Tile tl = d.tile_at(blockIdx.x);
    const int tid = threadIdx.x;
    const ConvDenseThread<T, TPT> w{d, tl, tid, conv_dense_stage_elems<T>(d.fn, TPT),
                                    reinterpret_cast<T*>(conv_smem_bytes), acc};
    dense_schedule(d.chunks(tl), d.stages, w);
    conv_dense_write<T, TPT>(d, tl, tid, acc);
}

// The phases of a PhaseList (phases.h) in one block, a barrier between them.
constexpr int kPhaseThreads = 512;
template <class T>
__global__ void __launch_bounds__(kPhaseThreads) phases_kernel(PhaseList list) {
    follow_previous_grid();
    for (int k = 0; k < list.n; ++k) {
        if (k > 0) __syncthreads();
        run_phase<T>(list.d[k], threadIdx.x, blockDim.x);
    }
}

// The same phases on many blocks (NC_PHASE_BLOCKS), a grid-wide barrier
// between them: a cooperative launch, so every block is resident and reaches
// each barrier.  Phases then may hold far more work than one block does well.
// A phase of at most kGridSmallPhase indices (the time, a probe, the step
// counter, a small copy) runs on block 0 alone, and consecutive such phases
// are separated by block barriers only: a grid barrier costs more than the
// few rounds of 512 threads such a phase takes.  Every block takes the same
// branches (the phase list is the same for all), so all reach each grid
// barrier.
constexpr int64_t kGridSmallPhase = 2 * kPhaseThreads;
template <class T>
__global__ void __launch_bounds__(kPhaseThreads) grid_phases_kernel(PhaseList list) {
    follow_previous_grid();
    cooperative_groups::grid_group grid = cooperative_groups::this_grid();
    const int64_t first = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
    bool last_small = false;
    for (int k = 0; k < list.n; ++k) {
        const bool small = list.d[k].n <= kGridSmallPhase;
        if (k > 0 && small && last_small) {
            if (blockIdx.x == 0) __syncthreads();
        } else if (k > 0) {
            grid.sync();
        }
        if (!small)
            run_phase<T>(list.d[k], first, stride);
        else if (blockIdx.x == 0)
            run_phase<T>(list.d[k], threadIdx.x, blockDim.x);
        last_small = small;
    }
}

class Exec {
  public:
    struct Graph {
        cudaGraphExec_t exec = nullptr;
        ~Graph() {
            if (exec) NC_CUDA_IGNORE(cudaGraphExecDestroy(exec));
        }
    };

    explicit Exec(int device) : device_(device) {
        try {
            NC_CUDA_CHECK(cudaSetDevice(device_));
            NC_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
            NC_CUDA_CHECK(cudaEventCreateWithFlags(&ev_in_, cudaEventDisableTiming));
            NC_CUDA_CHECK(cudaEventCreateWithFlags(&ev_out_, cudaEventDisableTiming));
            int major = 0;
            NC_CUDA_CHECK(
                cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device_));
            pdl_ = major >= 9 && env_knob(knobs::kPdl) != 0;
            phase_blocks_knob_ = static_cast<int>(env_knob(knobs::kPhaseBlocks));
        } catch (...) {
            close();  // no destructor runs for a half-built object: free what exists
            throw;
        }
    }
    ~Exec() { close(); }
    Exec(const Exec&) = delete;
    Exec& operator=(const Exec&) = delete;

    void enter(uint64_t user_stream) {
        NC_CUDA_CHECK(cudaSetDevice(device_));
        NC_CUDA_CHECK(cudaEventRecord(ev_in_, to_stream(user_stream)));
        NC_CUDA_CHECK(cudaStreamWaitEvent(stream_, ev_in_, 0));
    }
    void leave(uint64_t user_stream) {
        NC_CUDA_CHECK(cudaEventRecord(ev_out_, stream_));
        NC_CUDA_CHECK(cudaStreamWaitEvent(to_stream(user_stream), ev_out_, 0));
    }

    template <class F>
    void for_each(int64_t n, const F& f) {
        if (n <= 0) return;
        const int64_t blocks = std::min<int64_t>((n + kThreads - 1) / kThreads, kMaxBlocks);
        launch_kernel(for_each_kernel<F>, static_cast<unsigned>(blocks), kThreads, f, n);
    }

    template <class T>
    void phases(const PhaseList& list) {
        if (list.n <= 0) return;
        const int blocks = phase_blocks<T>();
        if (blocks > 1)
            launch_cooperative(grid_phases_kernel<T>, static_cast<unsigned>(blocks),
                               kPhaseThreads, list);
        else
            launch_kernel(phases_kernel<T>, 1, kPhaseThreads, list);
    }

    // The blocks of a phases launch: NC_PHASE_BLOCKS, at most as many as are
    // resident at once (0: all of those); 1 without cooperative launches.
    // (Queried once, before any capture: Program's constructor asks.)
    template <class T>
    int phase_blocks() {
        int& blocks = phase_blocks_[sizeof(T) == 8 ? 1 : 0];
        if (blocks > 0) return blocks;
        blocks = 1;
        if (phase_blocks_knob_ == 1) return blocks;
        int coop = 0, sms = 0, per_sm = 0;
        NC_CUDA_CHECK(cudaDeviceGetAttribute(&coop, cudaDevAttrCooperativeLaunch, device_));
        NC_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device_));
        NC_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(
            &per_sm, grid_phases_kernel<T>, kPhaseThreads, 0));
        const int fit = coop ? sms * per_sm : 1;
        blocks = std::max(1, phase_blocks_knob_ == 0 ? fit : std::min(phase_blocks_knob_, fit));
        return blocks;
    }

    template <class T, int TT, class Epi = NoEpilogue>
    void dot(const DotParams<T>& q, int64_t n_tiles, const Epi& epi = Epi()) {
        if (n_tiles <= 0) return;
        if (n_tiles > INT_MAX) throw std::invalid_argument("dot_inc: too many tiles");
        launch_kernel(dot_kernel<T, TT, Epi>, static_cast<unsigned>(n_tiles), kDotThreads, q,
                      epi);
    }

    template <class T, int TPT, class Epi = NoEpilogue>
    void dense_dot(const DotParams<T>& q, int64_t n_tiles, const Epi& epi = Epi()) {
        if (n_tiles <= 0) return;
        if (n_tiles > INT_MAX) throw std::invalid_argument("dot_inc: too many tiles");
        const size_t smem = static_cast<size_t>(q.dense_stages) *
                            dense_stage_elems<T>(q.dense_rt, TPT) * sizeof(T);
        launch_kernel_smem(dense_dot_kernel<T, TPT, Epi>, static_cast<unsigned>(n_tiles),
                           kDotThreads, smem, q, epi);
    }

    template <class T, int TPT>
    void conv_dense(const ConvDense<T>& d, int64_t n_tiles) {
        if (n_tiles <= 0) return;
        if (n_tiles > INT_MAX) throw std::invalid_argument("conv_inc: too many tiles");
        const size_t smem =
            static_cast<size_t>(d.stages) * conv_dense_stage_elems<T>(d.fn, TPT) * sizeof(T);
        launch_kernel_smem(conv_dense_kernel<T, TPT>, static_cast<unsigned>(n_tiles), kDotThreads,
                           smem, d);
    }

    // Whether kernels launch with programmatic dependencies (NC_PDL).
    bool pdl() const { return pdl_; }

    void h2d(uint64_t dst, const void* src, size_t bytes) {
        NC_CUDA_CHECK(cudaMemcpyAsync(reinterpret_cast<void*>(dst), src, bytes,
                                      cudaMemcpyHostToDevice, stream_));
    }
    void d2h(void* dst, uint64_t src, size_t bytes) {
        NC_CUDA_CHECK(cudaMemcpyAsync(dst, reinterpret_cast<const void*>(src), bytes,
                                      cudaMemcpyDeviceToHost, stream_));
    }
    void fill(uint64_t dst, int byte, size_t bytes) {
        NC_CUDA_CHECK(cudaMemsetAsync(reinterpret_cast<void*>(dst), byte, bytes, stream_));
    }
    void sync() { NC_CUDA_CHECK(cudaStreamSynchronize(stream_)); }

    // Page-locks host memory (faster, asynchronous copies); false if refused
    // (e.g. a locked-memory limit), in which case copies stay pageable.
    bool pin(void* p, size_t bytes) {
        if (!p || bytes == 0) return false;
        if (cudaHostRegister(p, bytes, cudaHostRegisterDefault) != cudaSuccess) {
            cudaGetLastError();
            return false;
        }
        return true;
    }
    void unpin(void* p) { NC_CUDA_IGNORE(cudaHostUnregister(p)); }

    std::shared_ptr<Graph> capture(const std::function<void()>& body) {
        NC_CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
        try {
            body();
        } catch (...) {
            cudaGraph_t broken = nullptr;
            NC_CUDA_IGNORE(cudaStreamEndCapture(stream_, &broken));
            if (broken) NC_CUDA_IGNORE(cudaGraphDestroy(broken));
            throw;
        }
        cudaGraph_t graph = nullptr;
        NC_CUDA_CHECK(cudaStreamEndCapture(stream_, &graph));
        auto out = std::make_shared<Graph>();
        const cudaError_t err = cudaGraphInstantiate(&out->exec, graph, 0);
        NC_CUDA_IGNORE(cudaGraphDestroy(graph));
        NC_CUDA_CHECK(err);
        return out;
    }
    void launch(Graph& g) { NC_CUDA_CHECK(cudaGraphLaunch(g.exec, stream_)); }

    // Timing marks of a profiled run: events with timing enabled, created
    // once and re-recorded (a run reads them before recording them again).
    void reserve_marks(size_t n) {
        while (marks_.size() < n) {
            cudaEvent_t e = nullptr;
            NC_CUDA_CHECK(cudaEventCreate(&e));
            marks_.push_back(e);
        }
    }
    void mark(size_t k) { NC_CUDA_CHECK(cudaEventRecord(marks_.at(k), stream_)); }
    double seconds_between(size_t a, size_t b) {
        float ms = 0;
        NC_CUDA_CHECK(cudaEventElapsedTime(&ms, marks_.at(a), marks_.at(b)));
        return 1e-3 * ms;
    }

    void close() {
        if (stream_) {
            NC_CUDA_IGNORE(cudaStreamSynchronize(stream_));
            NC_CUDA_IGNORE(cudaStreamDestroy(stream_));
            stream_ = nullptr;
        }
        if (ev_in_) NC_CUDA_IGNORE(cudaEventDestroy(ev_in_));
        if (ev_out_) NC_CUDA_IGNORE(cudaEventDestroy(ev_out_));
        ev_in_ = ev_out_ = nullptr;
        for (cudaEvent_t e : marks_) NC_CUDA_IGNORE(cudaEventDestroy(e));
        marks_.clear();
    }

  private:
    int device_ = 0;
    bool pdl_ = false;
    int phase_blocks_knob_ = 1;
    int phase_blocks_[2] = {0, 0};  // float32, float64 (0: not yet asked)
    cudaStream_t stream_ = nullptr;
    cudaEvent_t ev_in_ = nullptr, ev_out_ = nullptr;
    std::vector<cudaEvent_t> marks_;  // profile timing marks

    template <class... Params, class... Args>
    void launch_kernel(void (*kernel)(Params...), unsigned blocks, unsigned threads,
                       const Args&... args) {
        launch_kernel_smem(kernel, blocks, threads, 0, args...);
    }
    // ... with `smem` bytes of dynamic shared memory (at most 48 KB)
    template <class... Params, class... Args>
    void launch_kernel_smem(void (*kernel)(Params...), unsigned blocks, unsigned threads,
                            size_t smem, const Args&... args) {
        if (!pdl_) {
            kernel<<<blocks, threads, smem, stream_>>>(args...);
            NC_CUDA_CHECK(cudaGetLastError());
            return;
        }
        cudaLaunchAttribute attr = {};
        attr.id = cudaLaunchAttributeProgrammaticStreamSerialization;
        attr.val.programmaticStreamSerializationAllowed = 1;
        launch_with(attr, kernel, blocks, threads, smem, args...);
    }

    // A cooperative launch (grid-wide barriers; all blocks resident at once),
    // without programmatic serialization: it starts when the kernel before
    // it is done, so its blocks never wait for room behind that kernel's.
    template <class... Params, class... Args>
    void launch_cooperative(void (*kernel)(Params...), unsigned blocks, unsigned threads,
                            const Args&... args) {
        cudaLaunchAttribute attr = {};
        attr.id = cudaLaunchAttributeCooperative;
        attr.val.cooperative = 1;
        launch_with(attr, kernel, blocks, threads, 0, args...);
    }

    template <class... Params, class... Args>
    void launch_with(const cudaLaunchAttribute& attr, void (*kernel)(Params...), unsigned blocks,
                     unsigned threads, size_t smem, const Args&... args) {
        cudaLaunchAttribute attrs[1] = {attr};
        cudaLaunchConfig_t cfg = {};
        cfg.gridDim = dim3(blocks);
        cfg.blockDim = dim3(threads);
        cfg.dynamicSmemBytes = smem;
        cfg.stream = stream_;
        cfg.attrs = attrs;
        cfg.numAttrs = 1;
        NC_CUDA_CHECK(cudaLaunchKernelEx(&cfg, kernel, args...));
    }

    static cudaStream_t to_stream(uint64_t s) { return reinterpret_cast<cudaStream_t>(s); }
};

}  // namespace gpu
}  // namespace nc

#include "device_program.h"
