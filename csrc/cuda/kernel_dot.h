// DotInc as lane tiles (a slot of lanes per row) and as phases (DotRows).
// One kernel family of the device program: device_kernels.h includes it after
// the common definitions (DPools, divide, Addr, RunCtrl); include that header.
#pragma once
#ifndef NC_DEVICE_KERNELS_COMMON
#error "include device_kernels.h, which includes kernel_dot.h"
#endif

namespace nc {
namespace NC_DEV_NS {

// --- DotInc: batched ragged mat-vec with the minibatch as a dimension ---------
//
// Y[r] = I[r] + sum_c A[r, c] X[c] (or Y[r] += ...) for every row r of every
// block and every trial.  Rows are dealt to *slots* of g consecutive threads
// (g a power of two <= 32, chosen per block from its columns, so a slot lies
// within one warp).  A tile is one thread block of kDotThreads threads: up to
// kDotThreads / g slots, rows of one or several blocks, for trials t0 .. t0 + TT.
// Lane l of a slot sums columns l, l + g, ... for all TT trials, so an element
// of a shared A is read once per TT trials.  X is read from global memory: the
// rows of a tile that share a block read the same X, which the L1 cache serves.
// The g partial sums are combined by a butterfly (xor) exchange, after which
// every lane holds every sum (IEEE addition commutes, so the lanes agree to the
// bit), and lane l writes trials l, l + g, ...
constexpr int kDotThreads = 128;

template <typename T>
struct DotParams {
    DPools<T> p;
    // per block
    const int64_t *cols = nullptr, *a = nullptr, *a_rs = nullptr, *a_cs = nullptr,
                  *x = nullptr, *x_s = nullptr, *y = nullptr, *y_s = nullptr;
    // per block: Y starts from I[r * init_s] when init >= 0 (fusion.py); null: never
    const int64_t *init = nullptr, *init_s = nullptr;
    // per slot: its block and row
    const int64_t *slot_block = nullptr, *slot_row = nullptr;
    // per tile: first slot, number of slots, first trial, lanes per slot
    const int64_t* tile_slot0 = nullptr;
    const int32_t *tile_nslot = nullptr, *tile_t0 = nullptr, *tile_g = nullptr;
    // dense tiles (kernel_dense_dot.h): rows per tile (0: lane tiles, dot_* below),
    // trials per thread and stage buffers
    int dense_rt = 0, dense_tpt = 0, dense_stages = 0;
};

// The partial sums of thread `tid` of `tile` (zero for a thread without a row).
template <typename T, int TT>
NC_HD void dot_partial(const DotParams<T>& q, int64_t tile, int tid, T* acc) {
    NC_UNROLL
    for (int tt = 0; tt < TT; ++tt) acc[tt] = T(0);
    const int g = q.tile_g[tile];
    const int slot = tid / g, lane = tid % g;
    if (slot >= q.tile_nslot[tile]) return;
    const int64_t s = q.tile_slot0[tile] + slot;
    const int64_t b = q.slot_block[s], row = q.slot_row[s];
    const int64_t nc = q.cols[b], rs = q.a_rs[b], cs = q.a_cs[b], xs = q.x_s[b];
    const int t0 = q.tile_t0[tile], last = q.p.n_trials - 1;
    // trials past the last read the last one's X (valid memory); never written
    const T* X[TT];
    NC_UNROLL
    for (int tt = 0; tt < TT; ++tt) X[tt] = q.p.fat(q.x[b], t0 + tt < last ? t0 + tt : last);
    if (q.a[b] < q.p.f_shared) {  // one matrix for every trial: read each element once
        const T* A = q.p.fat(q.a[b], 0) + row * rs;
        NC_UNROLL4
        for (int64_t c = lane; c < nc; c += g) {
            const T av = A[c * cs];
            NC_UNROLL
            for (int tt = 0; tt < TT; ++tt) acc[tt] += av * X[tt][c * xs];
        }
    } else {  // per-trial matrices (e.g. learned weights)
        NC_UNROLL
        for (int tt = 0; tt < TT && t0 + tt <= last; ++tt) {
            const T* A = q.p.fat(q.a[b], t0 + tt) + row * rs;
            for (int64_t c = lane; c < nc; c += g) acc[tt] += A[c * cs] * X[tt][c * xs];
        }
    }
}

// Row `row` of block b in trial t gets its sum: Y = I + sum where the block
// starts from I (fusion.py), else Y += sum.  (Every mat-vec kernel writes so.)
template <typename T>
NC_HD void dot_store(const DotParams<T>& q, int64_t b, int64_t row, int t, T sum) {
    T* Y = q.p.fat(q.y[b], t) + row * q.y_s[b];
    if (q.init && q.init[b] >= 0)
        *Y = q.p.fat(q.init[b], t)[row * q.init_s[b]] + sum;
    else
        *Y += sum;
}

// What a tile does with each row and trial it has written (an epilogue):
// nothing, or update the neuron whose input it is (NeuronEpilogue,
// device_instrs_neurons.h), or filter it (FilterEpilogue,
// device_instrs_filters.h): operator()(slot, trial).
// With kByTrials it also has trials<N>(slot, first), run once after a dense
// tile's thread wrote trials first .. first + N - 1 of the row (those that
// exist; first does), in place of N calls (kernel_dense_dot.h).
struct NoEpilogue {
    static constexpr bool kByTrials = false;
    NC_HD void operator()(int64_t /*slot*/, int /*trial*/) const {}
};

// Writes the sums of thread `tid` (after the exchange): trials lane, lane + g,
// ...; then runs the epilogue on each (the same thread reads what it wrote).
template <typename T, int TT, class Epi>
NC_HD void dot_write(const DotParams<T>& q, int64_t tile, int tid, const T* acc, const Epi& epi) {
    const int g = q.tile_g[tile];
    const int slot = tid / g, lane = tid % g;
    if (slot >= q.tile_nslot[tile]) return;
    const int64_t s = q.tile_slot0[tile] + slot;
    const int64_t b = q.slot_block[s], row = q.slot_row[s];
    const int t0 = q.tile_t0[tile];
    NC_UNROLL
    for (int tt = 0; tt < TT; ++tt) {  // static indices keep acc in registers
        const int t = t0 + tt;
        if (tt % g != lane || t >= q.p.n_trials) continue;
        dot_store(q, b, row, t, acc[tt]);
        epi(s, t);
    }
}

// Mat-vec rows one thread each, as a phase (phases.h): small products of
// small models, which then share a launch with their neighbours.  Each sum is
// the tile's, to the bit: lane l's partial sum over columns l, l + g, ... in
// order (as dot_partial), then the butterfly's tree as lane 0 sees it (at m =
// g/2, ..., 1: v[l] + v[l + m]; every lane of the tile holds the same sum).
template <typename T>
NC_HD T dot_lane_sum(const DotParams<T>& q, int64_t b, int64_t row, int t, int lane, int g) {
    const int64_t nc = q.cols[b], cs = q.a_cs[b], xs = q.x_s[b];
    const T* A = q.p.fat(q.a[b], q.a[b] < q.p.f_shared ? 0 : t) + row * q.a_rs[b];
    const T* X = q.p.fat(q.x[b], t);
    T acc = T(0);
    for (int64_t c = lane; c < nc; c += g) acc += A[c * cs] * X[c * xs];
    return acc;
}

// v[l] = v[l] + v[l + M] for l < M, then for M/2, ..., 1 (static indices: v
// stays in registers)
template <typename T, int M>
NC_HD void dot_fold(T* v) {
    if constexpr (M > 0) {
        NC_UNROLL
        for (int l = 0; l < M; ++l) v[l] = v[l] + v[l + M];
        dot_fold<T, M / 2>(v);
    }
}

template <typename T, int G>
NC_HD T dot_tree_sum(const DotParams<T>& q, int64_t b, int64_t row, int t) {
    T v[G];
    NC_UNROLL
    for (int l = 0; l < G; ++l) v[l] = dot_lane_sum(q, b, row, t, l, G);
    dot_fold<T, G / 2>(v);
    return v[0];
}

// (rows of 32 lanes have more columns than a phase should sum serially, and
// 32 partial sums would take the phases kernel's registers)
constexpr int kDotRowsMaxG = 16;

template <typename T>
struct DotRows {
    DotParams<T> q;
    int64_t n_slots = 0;
    const int32_t* slot_g = nullptr;  // per slot: the lanes of its row in a tile
    NC_HD void operator()(int64_t idx) const {
        const QuotRem qr = divide(idx, n_slots);
        const int64_t s = qr.rem, b = q.slot_block[s], row = q.slot_row[s];
        const int t = static_cast<int>(qr.quot);
        T acc;
        switch (slot_g[s]) {
            case 1: acc = dot_tree_sum<T, 1>(q, b, row, t); break;
            case 2: acc = dot_tree_sum<T, 2>(q, b, row, t); break;
            case 4: acc = dot_tree_sum<T, 4>(q, b, row, t); break;
            case 8: acc = dot_tree_sum<T, 8>(q, b, row, t); break;
            default: acc = dot_tree_sum<T, 16>(q, b, row, t); break;  // (kDotRowsMaxG)
        }
        dot_store(q, b, row, t, acc);
    }
};

}  // namespace NC_DEV_NS
}  // namespace nc
