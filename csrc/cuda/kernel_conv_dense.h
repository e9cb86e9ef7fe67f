// ConvInc / ConvTransposeInc with weights shared by the trials, as dense tiles
// (output position x filters x trials, shared memory); needs kernel_conv.h and
// kernel_dense_dot.h (dense_schedule, dense_copy).  One kernel family of the
// device program: device_kernels.h includes it after those.
#pragma once
#ifndef NC_DEVICE_KERNELS_COMMON
#error "include device_kernels.h, which includes kernel_conv_dense.h"
#endif

namespace nc {
namespace NC_DEV_NS {

// --- convolution, dense tiles ------------------------------------------------
//
// An output element Y[o, f] (trial t) sums the terms (pair k, channel c) of its
// position o in order (conv::accumulate).  A dense tile is kDotThreads threads
// over one output position o, FN = 4 x lanes consecutive filters of one group
// (lanes = 2, 4, 8 or 16) and TN = (kDotThreads / lanes) x TPT trials: per
// chunk of kConvDenseTerms consecutive terms the tile stages the trials' input
// values (by term, trials contiguous) and the filters' weights (by term,
// filters contiguous) in shared memory, then thread tid sums filters
// 4 (tid % lanes) .. + 3 for the TPT trials from (tid / lanes) TPT: per term
// one vector load of 4 weights and vector loads of TPT inputs for 4 TPT
// multiply-adds.  So each weight comes from global memory once per tile (the
// register tiles of ConvTile read it once per TT trials), and every sum runs
// over the terms in order from zero: ConvStep's, to the bit.  The chunks go
// through dense_schedule's ring of stage buffers.
constexpr int kConvDenseFpt = 4;  // filters a thread
constexpr int kConvDenseTrialsMax = 64, kConvDenseFiltersMax = 64;
template <typename T>
constexpr int kConvDenseTerms = sizeof(T) == 4 ? 32 : 16;
// Trials a thread at most (float64: 4 x 8 sums in 64 registers; at 8 trials
// the kernel spilled)
template <typename T>
constexpr int kConvDenseTptMax = sizeof(T) == 4 ? 8 : 4;

// Trials a tile of fn filters and tpt trials a thread covers.
NC_HD constexpr int conv_dense_trials(int fn, int tpt) {
    return kDotThreads / (fn / kConvDenseFpt) * tpt;
}

// Elements of one stage buffer: inputs (terms x (TN + kDensePad)), then
// weights (terms x FN); a multiple of 16 bytes.
template <typename T>
NC_HD constexpr int conv_dense_stage_elems(int fn, int tpt) {
    return (kConvDenseTerms<T> * (conv_dense_trials(fn, tpt) + kDensePad<T> + fn) +
            kDensePad<T> - 1) /
           kDensePad<T> * kDensePad<T>;
}
static_assert(2 * conv_dense_stage_elems<float>(kConvDenseFiltersMax, 8) * 4 <= kDenseSmemBudget &&
                  2 * conv_dense_stage_elems<float>(8, 1) * 4 <= kDenseSmemBudget &&
                  2 * conv_dense_stage_elems<double>(kConvDenseFiltersMax, 8) * 8 <=
                      kDenseSmemBudget &&
                  2 * conv_dense_stage_elems<double>(8, 1) * 8 <= kDenseSmemBudget,
              "conv dense tiles: two stages must fit the shared memory budget");

template <typename T>
struct ConvDense {
    ConvStep<T> k;  // the operands (weights shared: k.w below f_shared)
    int fn = 0;     // filters a tile (8, 16, 32 or 64)
    int tpt = 0;    // trials a thread (1, 2, 4 or 8)
    int stages = 0;
    int64_t ft_per_group = 0;  // filter tiles of a group: ceil(fpg / fn)
    int64_t n_ft = 0;          // filter tiles of a position: groups x ft_per_group
    int64_t n_tt = 0;          // trial tiles

    // Tile `tile`'s output position, first and end filter (of its group), first
    // trial and the position's pairs.
    struct Tile {
        int64_t o, f0, f_end;
        int t0;
        conv::Row r;
    };
    NC_HD Tile tile_at(int64_t tile) const {
        const QuotRem a = divide(tile, n_tt), b = divide(a.quot, n_ft),
                      c = divide(b.rem, ft_per_group);
        const int64_t group_f0 = c.quot * k.g.fpg;
        return {b.quot, group_f0 + c.rem * fn, group_f0 + k.g.fpg,
                static_cast<int>(a.rem) * conv_dense_trials(fn, tpt), conv::row(k.g, b.quot)};
    }
    // The terms of a tile's position and their chunks.
    NC_HD int64_t terms(const Tile& tl) const { return tl.r.size() * k.g.cg; }
    NC_HD int64_t chunks(const Tile& tl) const {
        return (terms(tl) + kConvDenseTerms<T> - 1) / kConvDenseTerms<T>;
    }

    // Thread tid's share of staging chunk `chunk` of tile `tl` into `smem`:
    // input values at smem[j * (TN + kDensePad) + i] (term j, trial i; zeros
    // past the last trial), weights at smem[KC * (TN + kDensePad) + j * FN +
    // f] (zeros past the group's filters and past the chunk's terms).
    // Consecutive threads read consecutive terms of the inputs (channels, when
    // channels are last) and consecutive filters of the weights.
    NC_HD void stage(const Tile& tl, int64_t chunk, int tid, T* smem) const {
        constexpr int KC = kConvDenseTerms<T>;
        const conv::Geometry& g = k.g;
        const int tn = conv_dense_trials(fn, tpt);
        const int64_t q0 = chunk * KC, n_terms = terms(tl);
        const int64_t c_group = (tl.f0 / g.fpg) * g.cg;  // the group's first input channel
        {  // inputs: thread tid stages term tid % KC of every (kDotThreads / KC)-th trial
            const int j = tid % KC;
            T* Xs = smem + j * (tn + kDensePad<T>);
            if (q0 + j < n_terms) {
                const QuotRem kc = divide(q0 + j, g.cg);
                int64_t pos, tap;
                tl.r.pair(g, static_cast<int>(kc.quot), pos, tap);
                const int64_t xo = pos * g.x_ps + (c_group + kc.rem) * g.x_cs;
                for (int i = tid / KC; i < tn; i += kDotThreads / KC) {
                    if (tl.t0 + i < k.p.n_trials)
                        dense_copy(&Xs[i], k.p.fat(k.x, tl.t0 + i) + xo);
                    else
                        Xs[i] = T(0);
                }
            } else {
                for (int i = tid / KC; i < tn; i += kDotThreads / KC) Xs[i] = T(0);
            }
        }
        {  // weights: thread tid stages filter tid % FN of every (kDotThreads / FN)-th term
            T* Ws = smem + KC * (tn + kDensePad<T>);
            const int f = tid % fn;
            const T* W = k.p.fat(k.w, 0) + tl.f0 + f;
            for (int j = tid / fn; j < KC; j += kDotThreads / fn) {
                if (q0 + j < n_terms && tl.f0 + f < tl.f_end) {
                    const QuotRem kc = divide(q0 + j, g.cg);
                    int64_t pos, tap;
                    tl.r.pair(g, static_cast<int>(kc.quot), pos, tap);
                    dense_copy(&Ws[j * fn + f], W + (tap * g.cg + kc.rem) * g.filters);
                } else {
                    Ws[j * fn + f] = T(0);
                }
            }
        }
    }
};

// Thread tid's sums over the kc staged terms of one stage: acc[f * TPT + t]
// for filter 4 (tid % lanes) + f and trial (tid / lanes) TPT + t.
template <typename T, int TPT>
NC_HD void conv_dense_accumulate(int fn, int kc, int tid, const T* smem, T* acc) {
    constexpr int KC = kConvDenseTerms<T>;
    const int lanes = fn / kConvDenseFpt, tns = conv_dense_trials(fn, TPT) + kDensePad<T>;
    const T* x = smem + (tid / lanes) * TPT;
    const T* w = smem + KC * tns + (tid % lanes) * kConvDenseFpt;
    for (int j = 0; j < kc; ++j) {
        T wv[kConvDenseFpt], xv[TPT];
        dense_load<T, kConvDenseFpt>(w + j * fn, wv);
        dense_load<T, TPT>(x + j * tns, xv);
        NC_UNROLL
        for (int f = 0; f < kConvDenseFpt; ++f) {
            NC_UNROLL
            for (int t = 0; t < TPT; ++t) acc[f * TPT + t] += wv[f] * xv[t];
        }
    }
}

// Writes (or, with k.set, sets) thread tid's sums that fall inside its group
// and the minibatch.
template <typename T, int TPT>
NC_HD void conv_dense_write(const ConvDense<T>& d, const typename ConvDense<T>::Tile& tl, int tid,
                            const T* acc) {
    const int lanes = d.fn / kConvDenseFpt;
    const int64_t f0 = tl.f0 + (tid % lanes) * kConvDenseFpt;
    const int first = tl.t0 + (tid / lanes) * TPT;
    const conv::Geometry& g = d.k.g;
    NC_UNROLL
    for (int t = 0; t < TPT; ++t) {
        if (first + t >= d.k.p.n_trials) continue;
        T* Y = d.k.p.fat(d.k.y, first + t) + tl.o * g.y_ps;
        NC_UNROLL
        for (int f = 0; f < kConvDenseFpt; ++f) {
            if (f0 + f >= tl.f_end) continue;
            T& y = Y[(f0 + f) * g.y_cs];
            y = d.k.set ? acc[f * TPT + t] : y + acc[f * TPT + t];
        }
    }
}

// One thread's share of a dense conv tile for dense_schedule.
template <typename T, int TPT>
struct ConvDenseThread {
    const ConvDense<T>& d;
    typename ConvDense<T>::Tile tl;
    int tid, elems;
    T* smem;
    T* acc;
    NC_HD void stage(int64_t chunk, int buf) const { d.stage(tl, chunk, tid, smem + buf * elems); }
    NC_HD void sum(int64_t chunk, int buf) const {
        const int64_t rest = d.terms(tl) - chunk * kConvDenseTerms<T>;
        const int kc = static_cast<int>(rest < kConvDenseTerms<T> ? rest : kConvDenseTerms<T>);
        conv_dense_accumulate<T, TPT>(d.fn, kc, tid, smem + buf * elems, acc);
    }
#if defined(__CUDA_ARCH__)
    __device__ __forceinline__ void barrier() const { __syncthreads(); }
#else
    void barrier() const {}
#endif
};

}  // namespace NC_DEV_NS
}  // namespace nc
