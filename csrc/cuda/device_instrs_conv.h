// Loading conv_inc: register tiles of F filters x TT trials, or dense tiles.
// Included by device_instrs.h, after its shared helpers.
#pragma once
#include "../cpu/conv_spec.h"

namespace nc {
namespace NC_DEV_NS {

template <typename T, int F, int TT>
InstrPtr<T> conv_tile_instr(const ConvStep<T>& k, int nt) {
    const ConvTile<T, F, TT> c{k, k.g.filters / F};
    return for_each_instr<T>(c.n_fg * k.rows * ((nt + TT - 1) / TT), c);
}

template <typename T, int F>
InstrPtr<T> conv_tiles(const ConvStep<T>& k, int tt, int nt) {
    if (tt == 1) return conv_tile_instr<T, F, 1>(k, nt);
    if (tt == 4) return conv_tile_instr<T, F, 4>(k, nt);
    return conv_tile_instr<T, F, 8>(k, nt);
}

// A convolution as dense tiles (kernel_conv_dense.h).
template <typename T>
struct ConvDenseInstr : DInstr<T> {
    ConvDense<T> d;
    int64_t n_tiles = 0;
    void launch(Exec& ex, const StepRef<T>&) override {
        switch (d.tpt) {
            case 1: return ex.template conv_dense<T, 1>(d, n_tiles);
            case 2: return ex.template conv_dense<T, 2>(d, n_tiles);
            case 4: return ex.template conv_dense<T, 4>(d, n_tiles);
            default: return ex.template conv_dense<T, kConvDenseTptMax<T>>(d, n_tiles);
        }
    }
};

// NC_CONV_DENSE: a convolution with weights shared by the trials as dense
// tiles: FN the least power of two from 8 to 64 covering a group's filters
// (several filter tiles per group where more), TPT the most of 8 (4 in
// float64), 4, 2, 1 with TN = (kDotThreads / (FN / 4)) TPT at most 64 trials,
// halved while half of a tile's trials would be past the minibatch or there
// are fewer than 2 * kDenseMinTiles tiles.  1: where that fills at least half
// of a tile's filters and trials and gives kDenseMinTiles tiles; 2: always
// (tests); 0 (the default until a GPU run has timed it): never.  Null where
// not taken.
template <typename T>
InstrPtr<T> make_conv_dense(const ConvStep<T>& k, int nt) {
    const int64_t mode = env_knob(knobs::kConvDense);
    if (mode == 0 || k.rows == 0 || k.g.filters == 0 || k.g.cg == 0) return nullptr;
    auto in = std::make_unique<ConvDenseInstr<T>>();
    ConvDense<T>& d = in->d;
    d.k = k;
    d.fn = 8;
    while (d.fn < kConvDenseFiltersMax && d.fn < k.g.fpg) d.fn *= 2;
    d.ft_per_group = (k.g.fpg + d.fn - 1) / d.fn;
    d.n_ft = k.g.filters / k.g.fpg * d.ft_per_group;
    d.tpt = kConvDenseTptMax<T>;
    while (conv_dense_trials(d.fn, d.tpt) > kConvDenseTrialsMax) d.tpt /= 2;
    auto tiles = [&] {
        const int tn = conv_dense_trials(d.fn, d.tpt);
        return k.rows * d.n_ft * ((nt + tn - 1) / tn);
    };
    while (d.tpt > 1 &&
           (conv_dense_trials(d.fn, d.tpt) >= 2 * nt || tiles() < 2 * kDenseMinTiles))
        d.tpt /= 2;
    if (mode == 1 && (2 * nt < conv_dense_trials(d.fn, d.tpt) || 2 * k.g.fpg < d.fn ||
                      tiles() < kDenseMinTiles))
        return nullptr;
    const int64_t most_terms = conv::pair_counts(k.g).most * k.g.cg;
    const int64_t chunks = (most_terms + kConvDenseTerms<T> - 1) / kConvDenseTerms<T>;
    const int64_t fit =
        kDenseSmemBudget / (conv_dense_stage_elems<T>(d.fn, d.tpt) * int64_t(sizeof(T)));
    d.stages = static_cast<int>(std::max<int64_t>(1, std::min({chunks, fit, int64_t(kDenseStagesMax)})));
    in->n_tiles = tiles();
    if (in->n_tiles > INT_MAX) throw std::invalid_argument("conv_inc: too many tiles for one launch");
    d.n_tt = in->n_tiles / (k.rows * d.n_ft);
    return in;
}

template <typename T>
InstrPtr<T> make_conv(const InstrSpec& spec, Program<T>& prog) {
    ConvStep<T> k;
    k.p = prog.pools();
    k.g = conv::geometry_from(spec);
    const conv::Geometry& g = k.g;
    k.rows = g.out_positions();
    k.x = int_scalar(spec, "X");
    k.y = int_scalar(spec, "Y");
    k.w = int_scalar(spec, "W");
    k.set = spec.scalar("set", 0.0) != 0.0;
    if (k.w >= prog.pools().f_shared)  // per-trial weights: one thread per output element
        return for_each_instr<T>(k.rows * g.filters * prog.n_trials(), k);
    const int nt = prog.n_trials();
    if (auto dense = make_conv_dense(k, nt)) return dense;
    int tt = nt == 1 ? 1 : nt <= 4 ? 4 : 8;
    int f = g.fpg % 4 == 0 ? 4 : g.fpg % 2 == 0 ? 2 : 1;
    // NC_CONV_MIN_THREADS: smaller register tiles (fewer trials, then fewer
    // filters a thread) until the launch has this many threads (a layer of
    // few output positions and filters is otherwise a few blocks of long threads)
    const int64_t min_threads = env_knob(knobs::kConvMinThreads);
    auto threads = [&] { return g.filters / f * k.rows * ((nt + tt - 1) / tt); };
    while (threads() < min_threads && (tt > 1 || f > 1)) {
        if (tt > 1)
            tt = tt == 8 ? 4 : 1;
        else
            f /= 2;
    }
    if (f == 4) return conv_tiles<T, 4>(k, tt, nt);
    if (f == 2) return conv_tiles<T, 2>(k, tt, nt);
    return conv_tiles<T, 1>(k, tt, nt);
}

}  // namespace NC_DEV_NS
}  // namespace nc
