// DotInc as dense tiles (rows x trials, shared memory); needs kernel_dot.h.
// One kernel family of the device program: device_kernels.h includes it after
// the common definitions (DPools, divide, Addr, RunCtrl); include that header.
#pragma once
#ifndef NC_DEVICE_KERNELS_COMMON
#error "include device_kernels.h, which includes kernel_dense_dot.h"
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
constexpr int kDenseTrialsPerThreadMax = 8;
constexpr int kDenseRowsMin = 8, kDenseRowsMax = kDotThreads;
template <typename T>
constexpr int kDenseCols = sizeof(T) == 4 ? 32 : 16;
static_assert(kDotThreads % 32 == 0 && kDotThreads % 16 == 0, "staging: whole rows of columns");
template <typename T>
constexpr int kDenseStride = kDenseCols<T> + 1;  // A by row (odd: rows in different banks)
template <typename T>
constexpr int kDensePad = 16 / sizeof(T);  // X by column: 16-byte aligned columns

NC_HD int dense_trials(int rt, int tpt) { return tpt * kDotThreads / rt; }

// Shared memory of a tile of RT rows: A, then X from offset RT * kDenseStride.
template <typename T>
constexpr int dense_smem(int rt) {
    return rt * kDenseStride<T> +
           kDenseCols<T> * (kDenseTrialsPerThreadMax * kDotThreads / rt + kDensePad<T>);
}
template <typename T>
constexpr int kDenseSmem = dense_smem<T>(kDenseRowsMin) > dense_smem<T>(kDenseRowsMax)
                               ? dense_smem<T>(kDenseRowsMin)
                               : dense_smem<T>(kDenseRowsMax);

// The columns of a tile's chunk from column c0 of its `nc`: at most kDenseCols.
template <typename T>
NC_HD int dense_chunk(int64_t nc, int64_t c0) {
    return static_cast<int>(nc - c0 < kDenseCols<T> ? nc - c0 : kDenseCols<T>);
}

// Thread tid's share of staging columns c0 .. c0 + kc - 1: the tile's rows of A
// at smem[i * kDenseStride + j] (zeros past its rows), then its trials' X at
// smem[RT * kDenseStride + j * (TN + kDensePad) + i] (zeros past the last
// trial).  Thread tid stages column tid % kDenseCols of every
// (kDotThreads / kDenseCols)-th row or trial: consecutive threads read
// consecutive columns.
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
    for (int i = tid / KC; i < rt; i += step) smem[i * S + j] = i < nslot ? A[(row0 + i) * rs] : T(0);
    T* Xs = smem + rt * S + j * (tn + kDensePad<T>);
    const int64_t xj = (c0 + j) * q.x_s[b];
    const int t0 = q.tile_t0[tile], n_trials = q.p.n_trials;
    for (int i = tid / KC; i < tn; i += step)
        Xs[i] = t0 + i < n_trials ? q.p.fat(q.x[b], t0 + i)[xj] : T(0);
}

// x[0 .. N - 1] = p[0 .. N - 1], p aligned to 16 bytes (8 for two float32):
// vector loads on the GPU.
template <typename T, int N>
NC_HD void dense_load(const T* p, T* x) {
#if defined(__CUDA_ARCH__)
    if constexpr (sizeof(T) == 4 && N % 4 == 0) {
        NC_UNROLL
        for (int k = 0; k < N / 4; ++k) {
            const float4 u = reinterpret_cast<const float4*>(p)[k];
            x[4 * k] = u.x, x[4 * k + 1] = u.y, x[4 * k + 2] = u.z, x[4 * k + 3] = u.w;
        }
    } else if constexpr (sizeof(T) == 4 && N == 2) {
        const float2 u = reinterpret_cast<const float2*>(p)[0];
        x[0] = u.x, x[1] = u.y;
    } else if constexpr (sizeof(T) == 8 && N % 2 == 0) {
        NC_UNROLL
        for (int k = 0; k < N / 2; ++k) {
            const double2 u = reinterpret_cast<const double2*>(p)[k];
            x[2 * k] = u.x, x[2 * k + 1] = u.y;
        }
    } else {
        NC_UNROLL
        for (int k = 0; k < N; ++k) x[k] = p[k];
    }
#else
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
