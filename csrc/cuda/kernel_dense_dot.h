// DotInc as dense tiles (rows x trials, shared memory); needs kernel_dot.h.
// One kernel family of the device program: device_kernels.h includes it after
// the common definitions (DPools, divide, Addr, RunCtrl); include that header.
#pragma once
#ifndef NC_DEVICE_KERNELS_COMMON
#error "include device_kernels.h, which includes kernel_dense_dot.h"
#endif
#if NC_DEV_CHECKED
#include <cstring>
#include <deque>
#include <vector>
#endif

namespace nc {
namespace NC_DEV_NS {

// --- DotInc, dense tiles: weights shared by the trials, many trials -----------
//
// A dense tile is kDotThreads threads over RT = dense_rt consecutive rows of
// one block (slots tile_slot0 .. + tile_nslot) and TN = dense_trials(RT, TPT)
// trials from tile_t0, TPT = dense_tpt trials per thread (2, 4 or 8).  Chunks
// of kDenseCols columns of the rows of A and of the trials' X are staged in
// shared memory (read along the columns, coalesced; X stored by column, its
// trials contiguous), then thread tid sums row tid % RT for the TPT
// consecutive trials from (tid / RT) * TPT over the chunk's columns: per
// column one A value and vector loads of X (16 bytes, or 8 for two float32)
// for TPT multiply-adds.  So a tile reads each element of A and X it needs
// from global memory once, where the lane tiles (kernel_dot.h) read X once per
// row and A once per TT trials.  Each sum runs over the columns in order from
// zero: DotRows' with one lane, to the bit.
//
// The chunks go through a ring of dense_stages stage buffers: while the tile
// sums chunk k, the copies of chunks k + 1 .. k + stages - 1 are in flight
// (cp.async on compute capability 8.0 and newer: global memory straight into
// shared memory, no registers held).  A tile of few rows and many columns (the
// chain's decoders: 16 rows of 500 columns, 16 chunks) would otherwise wait
// for global memory once per chunk, with little else resident to hide it.
constexpr int kDenseTrialsPerThreadMax = 8;
constexpr int kDenseRowsMin = 8, kDenseRowsMax = kDotThreads;
constexpr int kDenseStagesMax = 8;
// Shared memory a dense tile may take, in bytes (dynamic, below the 48 KB
// that a launch may take without opting in).
constexpr int kDenseSmemBudget = 40 * 1024;
template <typename T>
constexpr int kDenseCols = sizeof(T) == 4 ? 32 : 16;
static_assert(kDotThreads % 32 == 0 && kDotThreads % 16 == 0, "staging: whole rows of columns");
template <typename T>
constexpr int kDenseStride = kDenseCols<T> + 1;  // A by row (odd: rows in different banks)
template <typename T>
constexpr int kDensePad = 16 / sizeof(T);  // X by column: 16-byte aligned columns

NC_HD constexpr int dense_trials(int rt, int tpt) { return tpt * kDotThreads / rt; }

// Elements of one stage buffer of a tile of RT rows and TPT trials a thread: A,
// then X from offset RT * kDenseStride; a multiple of 16 bytes, so that every
// stage starts 16-byte aligned.
template <typename T>
NC_HD constexpr int dense_stage_elems(int rt, int tpt) {
    return (rt * kDenseStride<T> + kDenseCols<T> * (dense_trials(rt, tpt) + kDensePad<T>) +
            kDensePad<T> - 1) /
           kDensePad<T> * kDensePad<T>;
}
// (two stages of the largest shape fit the budget: a tile of two chunks or more
// always overlaps a chunk's copy with the last one's sums)
static_assert(2 * dense_stage_elems<float>(kDenseRowsMin, 8) * 4 <= kDenseSmemBudget &&
                  2 * dense_stage_elems<float>(kDenseRowsMax, 8) * 4 <= kDenseSmemBudget &&
                  2 * dense_stage_elems<double>(kDenseRowsMin, 8) * 8 <= kDenseSmemBudget &&
                  2 * dense_stage_elems<double>(kDenseRowsMax, 8) * 8 <= kDenseSmemBudget,
              "dense tiles: two stages must fit the shared memory budget");

// Stage buffers of a launch whose longest block has max_cols columns: one per
// chunk, at most kDenseStagesMax and as many as the budget holds.
template <typename T>
inline int dense_stages(int rt, int tpt, int64_t max_cols) {
    const int64_t chunks = (max_cols + kDenseCols<T> - 1) / kDenseCols<T>;
    const int64_t fit = kDenseSmemBudget / (dense_stage_elems<T>(rt, tpt) * int64_t(sizeof(T)));
    int64_t n = chunks < fit ? chunks : fit;
    n = n < kDenseStagesMax ? n : kDenseStagesMax;
    return static_cast<int>(n < 1 ? 1 : n);
}

// The columns of a tile's chunk from column c0 of its `nc`: at most kDenseCols.
template <typename T>
NC_HD int dense_chunk(int64_t nc, int64_t c0) {
    return static_cast<int>(nc - c0 < kDenseCols<T> ? nc - c0 : kDenseCols<T>);
}

#if NC_DEV_CHECKED
// The emulator's cp.async: a copy waits in its group (dense_commit closes one)
// until dense_wait lets the group land, as on a GPU, so that a sum of a chunk
// not yet waited for reads the NaN its stage buffer was poisoned with
// (program_emulated.cpp), not the chunk.  The emulator runs every thread's
// share of a schedule step at once and commits once for all of them: one
// queue stands for every thread's.
struct EmulatedCopies {
    struct Copy {
        void* dst;
        const void* src;
        size_t bytes;
    };
    std::vector<Copy> open;                // since the last commit
    std::deque<std::vector<Copy>> groups;  // committed, in flight, oldest first
    // Lands the oldest groups until at most `pending` are in flight.
    void land(size_t pending) {
        for (; groups.size() > pending; groups.pop_front())
            for (const Copy& c : groups.front()) std::memcpy(c.dst, c.src, c.bytes);
    }
    // Copies left in flight (or never committed) when a tile ends: chunks
    // staged and never summed.
    bool idle() const {
        for (const auto& g : groups)
            if (!g.empty()) return false;
        return open.empty();
    }
};
inline EmulatedCopies& emulated_copies() {
    static thread_local EmulatedCopies q;
    return q;
}
#endif

// *dst = *src, dst in shared and src in global memory: on compute capability
// 8.0 and newer an asynchronous copy (cp.async), complete for this thread after
// dense_wait and for the block after a barrier that follows it.
template <typename T>
NC_HD void dense_copy(T* dst, const T* src) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    const unsigned d = static_cast<unsigned>(__cvta_generic_to_shared(dst));
    if constexpr (sizeof(T) == 4)
        asm volatile("cp.async.ca.shared.global [%0], [%1], 4;" ::"r"(d), "l"(src) : "memory");
    else
        asm volatile("cp.async.ca.shared.global [%0], [%1], 8;" ::"r"(d), "l"(src) : "memory");
#elif NC_DEV_CHECKED
    emulated_copies().open.push_back({dst, src, sizeof(T)});
#else
    *dst = *src;
#endif
}
// Closes this thread's copies since the last call into one group (a stage).
NC_HD void dense_commit() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile("cp.async.commit_group;" ::: "memory");
#elif NC_DEV_CHECKED
    EmulatedCopies& q = emulated_copies();
    q.groups.push_back(std::move(q.open));
    q.open.clear();
#endif
}
// Waits until at most `pending` (0 .. kDenseStagesMax - 2) of this thread's
// groups are still in flight (the instruction takes a constant).
NC_HD void dense_wait(int pending) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    switch (pending) {
        case 0: asm volatile("cp.async.wait_group 0;" ::: "memory"); break;
        case 1: asm volatile("cp.async.wait_group 1;" ::: "memory"); break;
        case 2: asm volatile("cp.async.wait_group 2;" ::: "memory"); break;
        case 3: asm volatile("cp.async.wait_group 3;" ::: "memory"); break;
        case 4: asm volatile("cp.async.wait_group 4;" ::: "memory"); break;
        case 5: asm volatile("cp.async.wait_group 5;" ::: "memory"); break;
        default: asm volatile("cp.async.wait_group 6;" ::: "memory"); break;
    }
#elif NC_DEV_CHECKED
    emulated_copies().land(static_cast<size_t>(pending));
#else
    (void)pending;
#endif
}
static_assert(kDenseStagesMax - 2 <= 6, "dense_wait: a case per pending count");

// Thread tid's share of staging columns c0 .. c0 + kc - 1 into one stage
// buffer: the tile's rows of A at smem[i * kDenseStride + j] (zeros past its
// rows), then its trials' X at smem[RT * kDenseStride + j * (TN + kDensePad) +
// i] (zeros past the last trial).  Thread tid stages column tid % kDenseCols
// of every (kDotThreads / kDenseCols)-th row or trial: consecutive threads
// read consecutive columns.
template <typename T>
NC_HD void dense_stage(const DotParams<T>& q, int64_t tile, int64_t c0, int kc, int tid,
                       T* smem) {
    constexpr int S = kDenseStride<T>, KC = kDenseCols<T>, step = kDotThreads / KC;
    const int rt = q.dense_rt, tn = dense_trials(rt, q.dense_tpt);
    const int j = tid % KC;
    if (j >= kc) return;
    const int64_t s0 = q.tile_slot0[tile];
    const int64_t b = q.slot_block[s0], row0 = q.slot_row[s0];
    const int nslot = q.tile_nslot[tile];
    const T* A = q.p.fat(q.a[b], 0) + (c0 + j) * q.a_cs[b];
    const int64_t rs = q.a_rs[b];
    for (int i = tid / KC; i < rt; i += step) {
        if (i < nslot)
            dense_copy(&smem[i * S + j], &A[(row0 + i) * rs]);
        else
            smem[i * S + j] = T(0);
    }
    T* Xs = smem + rt * S + j * (tn + kDensePad<T>);
    const int64_t xj = (c0 + j) * q.x_s[b];
    const int t0 = q.tile_t0[tile], n_trials = q.p.n_trials;
    for (int i = tid / KC; i < tn; i += step) {
        if (t0 + i < n_trials)
            dense_copy(&Xs[i], &q.p.fat(q.x[b], t0 + i)[xj]);
        else
            Xs[i] = T(0);
    }
}

// The order of a dense tile's work over its n_chunks chunks, shared by the
// kernel (DenseThread: one thread's share, barrier() = __syncthreads) and the
// emulator (every thread's share at once, no barrier): w.stage(k, buf) stages
// chunk k into stage buffer buf, w.sum(k, buf) sums it.  Chunks 0 .. P - 1 (P
// = max(stages - 1, 1)) are requested up front; once chunk k is in (this
// thread's copies: dense_wait; everyone's: the barrier, which also says that
// every thread is done with chunk k - 1), chunk k + P goes into k - 1's buffer
// while the tile sums chunk k.  Each step commits a group, empty or not, so
// that "at most P - 1 pending" always means chunk k is in.  One stage serves
// one chunk only.  (A worker with inlined members, not lambdas: nvcc left a
// lambda a call, and its caller spilled.)
template <class Worker>
NC_HD void dense_schedule(int64_t n_chunks, int stages, const Worker& w) {
    const int ahead = stages > 1 ? stages - 1 : 1;
    // buffers by counting around the ring (a 64-bit % is a call on a GPU)
    auto next = [stages](int buf) { return buf + 1 == stages ? 0 : buf + 1; };
    int in = 0, out = 0;  // the buffers of the next chunk staged and summed
    for (int64_t k = 0; k < ahead; ++k, in = next(in)) {
        if (k < n_chunks) w.stage(k, in);
        dense_commit();
    }
    for (int64_t k = 0; k < n_chunks; ++k, in = next(in), out = next(out)) {
        dense_wait(ahead - 1);
        w.barrier();
        if (k + ahead < n_chunks) w.stage(k + ahead, in);
        dense_commit();
        w.sum(k, out);
    }
}

// The bytes dense_load's vector loads need p aligned to on the GPU; the
// GPU loads this many bytes at a time.
template <typename T, int N>
NC_HD constexpr int dense_load_align() {
    return (sizeof(T) == 4 && N % 4 == 0) || (sizeof(T) == 8 && N % 2 == 0) ? 16
           : sizeof(T) == 4 && N == 2                                         ? 8
                                                                              : int(sizeof(T));
}

#if defined(__CUDACC__)
// The CUDA vector type of W elements of T (T itself for W = 1), and its
// elements written to x[0 .. W - 1].
template <typename T, int W>
struct DenseVector {
    static_assert(W == 1, "dense_load: no vector type of this width");
    using type = T;
};
template <>
struct DenseVector<float, 4> {
    using type = float4;
};
template <>
struct DenseVector<float, 2> {
    using type = float2;
};
template <>
struct DenseVector<double, 2> {
    using type = double2;
};
template <typename T>
__device__ inline void dense_unpack(const T& u, T* x) { x[0] = u; }
__device__ inline void dense_unpack(const float4& u, float* x) {
    x[0] = u.x, x[1] = u.y, x[2] = u.z, x[3] = u.w;
}
__device__ inline void dense_unpack(const float2& u, float* x) { x[0] = u.x, x[1] = u.y; }
__device__ inline void dense_unpack(const double2& u, double* x) { x[0] = u.x, x[1] = u.y; }
#endif

// x[0 .. N - 1] = p[0 .. N - 1], p aligned to dense_load_align (16 bytes, 8
// for two float32): vector loads of that width on the GPU, so the width and
// the alignment the emulator checks (a misaligned vector load is a launch
// failure on the GPU) come from one place.
template <typename T, int N>
NC_HD void dense_load(const T* p, T* x) {
#if defined(__CUDA_ARCH__)
    constexpr int W = dense_load_align<T, N>() / int(sizeof(T));
    static_assert(N % W == 0, "dense_load: N is a whole number of vectors");
    using V = typename DenseVector<T, W>::type;
    NC_UNROLL
    for (int k = 0; k < N / W; ++k) {
        const V u = reinterpret_cast<const V*>(p)[k];  // one load (a reference would load by element)
        dense_unpack(u, x + W * k);
    }
#else
#if NC_DEV_CHECKED
    if (reinterpret_cast<uintptr_t>(p) % dense_load_align<T, N>() != 0)
        throw std::logic_error("emulated device: dense_load of " + std::to_string(N) +
                               " elements from an address not aligned to " +
                               std::to_string(dense_load_align<T, N>()) + " bytes");
#endif
    for (int k = 0; k < N; ++k) x[k] = p[k];
#endif
}

// Thread tid's sums over the kc staged columns (see above).
template <typename T, int TPT>
NC_HD void dense_accumulate(const DotParams<T>& q, int kc, int tid, const T* smem, T* acc) {
    constexpr int S = kDenseStride<T>;
    const int rt = q.dense_rt;
    const int tns = dense_trials(rt, TPT) + kDensePad<T>;
    const T* a = smem + (tid % rt) * S;
    const T* x = smem + rt * S + (tid / rt) * TPT;
    for (int j = 0; j < kc; ++j) {
        const T av = a[j];
        T xv[TPT];
        dense_load<T, TPT>(x + j * tns, xv);
        NC_UNROLL
        for (int k = 0; k < TPT; ++k) acc[k] += av * xv[k];
    }
}

// One thread's share of a dense tile for dense_schedule: the tile's stage
// buffers (dynamic shared memory) and the thread's TPT sums.
template <typename T, int TPT>
struct DenseThread {
    const DotParams<T>& q;
    int64_t tile, nc;
    int tid, elems;
    T* smem;
    T* acc;
    NC_HD void stage(int64_t k, int buf) const {
        const int64_t c0 = k * kDenseCols<T>;
        dense_stage(q, tile, c0, dense_chunk<T>(nc, c0), tid, smem + buf * elems);
    }
    NC_HD void sum(int64_t k, int buf) const {
        dense_accumulate<T, TPT>(q, dense_chunk<T>(nc, k * kDenseCols<T>), tid,
                                 smem + buf * elems, acc);
    }
#if defined(__CUDA_ARCH__)
    __device__ __forceinline__ void barrier() const { __syncthreads(); }
#else
    void barrier() const {}
#endif
};

// Writes thread tid's sums (dot_store), then runs the epilogue on each
// (slot, trial) written, or once on all of them (Epi::kByTrials).
template <typename T, int TPT, class Epi>
NC_HD void dense_write(const DotParams<T>& q, int64_t tile, int tid, const T* acc,
                       const Epi& epi) {
    const int rt = q.dense_rt, i = tid % rt;
    if (i >= q.tile_nslot[tile]) return;
    const int64_t s = q.tile_slot0[tile] + i;
    const int64_t b = q.slot_block[s], row = q.slot_row[s];
    const int first = q.tile_t0[tile] + (tid / rt) * TPT;
    if (first >= q.p.n_trials) return;  // (a tile's trials past the last)
    NC_UNROLL
    for (int k = 0; k < TPT; ++k) {  // (static indices keep acc in registers)
        const int t = first + k;
        if (t >= q.p.n_trials) continue;
        dot_store(q, b, row, t, acc[k]);
        if constexpr (!Epi::kByTrials) epi(s, t);
    }
    if constexpr (Epi::kByTrials) epi.template trials<TPT>(s, first);
}

}  // namespace NC_DEV_NS
}  // namespace nc
