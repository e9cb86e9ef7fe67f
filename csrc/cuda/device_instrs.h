// Loading each instruction kind of the CPU registry into device tables
// (included at the end of device_program.h).  The spec was already validated
// by the CPU factory of the same kind; here it only changes form.
#pragma once
#include <algorithm>
#include <climits>
#include <iterator>
#include <type_traits>
#include <unordered_map>
#include <utility>

#include "knobs.h"

namespace nc {
namespace NC_DEV_NS {

template <typename T>
using InstrPtr = std::unique_ptr<DInstr<T>>;

// The least power of two covering nt trials, at most max_tt (rounded down to a
// power of two): the trials one thread or tile takes.
inline int trials_per_thread(int nt, int64_t max_tt) {
    int tt = 1;
    while (tt < nt && tt < max_tt) tt *= 2;
    return tt > max_tt ? tt / 2 : tt;
}

inline bool has_duplicates(std::vector<int64_t> v) {
    std::sort(v.begin(), v.end());
    return std::adjacent_find(v.begin(), v.end()) != v.end();
}

inline int64_t int_scalar(const InstrSpec& spec, const std::string& name) {
    return static_cast<int64_t>(spec.scalar(name));
}

// --- element-wise kinds: batch items ---------------------------------------
template <typename T>
InstrPtr<T> make_simple(const InstrSpec& spec) {
    auto in = std::make_unique<DInstr<T>>();
    in->simple = true;
    std::vector<int64_t> w;
    std::vector<Term> terms;
    int32_t mode = kSet;
    const std::string& kind = spec.kind;
    if (kind == "time_update") {
        w.push_back(int_scalar(spec, "time"));
        terms.push_back({kStep, int_scalar(spec, "step"), 0, 0.0});
        mode = kTime;
    } else if (kind == "reset") {
        w = spec.int_array("dst");
        const auto& value = spec.float_array("value");
        for (double v : value) terms.push_back({kConst, 0, 0, v});
    } else if (kind == "copy" || kind == "copy_runs") {
        mode = spec.scalar("inc") != 0 ? kInc : kSet;
        const auto& src = spec.int_array("src");
        const auto& dst = spec.int_array("dst");
        if (kind == "copy") {
            w = dst;
            for (int64_t s : src) terms.push_back({kValue, s, 0, 0.0});
        } else {
            const auto& len = spec.int_array("length");
            for (size_t r = 0; r < len.size(); ++r)
                for (int64_t k = 0; k < len[r]; ++k) {
                    w.push_back(dst[r] + k);
                    terms.push_back({kValue, src[r] + k, 0, 0.0});
                }
        }
    } else {  // elementwise_inc: *Y += *A * *X, or from I (fusion.py): *Y = *I + *A * *X
        const bool from_init = spec.ints.count("I") > 0;
        mode = from_init ? kSum : kInc;
        const auto& y = spec.int_array("Y");
        const auto& a = spec.int_array("A");
        const auto& x = spec.int_array("X");
        for (size_t k = 0; k < y.size(); ++k) {  // an item's terms in order: I, the product
            if (from_init) {
                w.push_back(y[k]);
                terms.push_back({kValue, spec.int_array("I")[k], 0, 0.0});
            }
            w.push_back(y[k]);
            terms.push_back({kProduct, a[k], x[k], 0.0});
        }
    }
    auto grouped = group_terms<T>(w, terms, mode);
    in->batch = std::move(grouped.first);
    if (mode == kTime) in->batch.i_writes.push_back(int_scalar(spec, "step"));
    in->two_phase = grouped.second || spec.scalar("overlap", 0) != 0;
    return in;
}

// --- dot_inc -------------------------------------------------------------------
template <typename T>
struct DotInstr : DInstr<T> {
    DotParams<T> q;
    int64_t n_tiles = 0;
    int tt = 1;
    // host copies for fusions: each slot's block and row, each block's Y, and
    // what the instruction reads (X, A, I) as sorted disjoint address ranges
    std::vector<int64_t> slot_block, slot_row, y, y_s;
    std::vector<std::pair<int64_t, int64_t>> reads;  // [first, last]
    bool reads_any(int64_t a) const {
        auto it = std::upper_bound(reads.begin(), reads.end(), std::make_pair(a, INT64_MAX));
        return it != reads.begin() && std::prev(it)->second >= a;
    }
    bool writes(std::vector<int64_t>& out) const override {
        for (size_t s = 0; s < slot_row.size(); ++s) out.push_back(slot_output(s));
        return true;
    }
    // the address that slot s writes (in every trial)
    int64_t slot_output(size_t s) const {
        const int64_t b = slot_block[s];
        return y[b] + slot_row[s] * y_s[b];
    }
    // a launch of this mat-vec whose tiles run `epi` on each row and trial they write
    template <class Epi>
    typename DInstr<T>::Launch with_epilogue(const Epi& epi) const {
        const DotInstr<T>* d = this;  // instructions live as long as the program
        return [d, epi](Exec& ex, const StepRef<T>&) { d->run(ex, epi); };
    }
    void launch(Exec& ex, const StepRef<T>&) override { run(ex, NoEpilogue()); }
    // one thread per row and trial, as a phase; each row of c columns costs
    // max(1, c / 16) of NC_PHASE_MAX, as its thread does c multiply-adds
    std::vector<PhasePart> phase_parts(const RunCtrl<T>*) const override {
        if (slot_row.empty() || !rows.slot_g || max_g > kDotRowsMaxG) return {};
        return {phase_part(rows, rows.n_slots * q.p.n_trials, row_cost * q.p.n_trials)};
    }
    DotRows<T> rows;
    int64_t row_cost = 0;
    int max_g = 0;  // most lanes per row
    template <class Epi>
    void run(Exec& ex, const Epi& epi) const {
        if (n_tiles == 0) return;
        if (q.dense_rt > 0) {
            switch (q.dense_tpt) {
                case 2: return ex.template dense_dot<T, 2>(q, n_tiles, epi);
                case 4: return ex.template dense_dot<T, 4>(q, n_tiles, epi);
                default: return ex.template dense_dot<T, 8>(q, n_tiles, epi);
            }
        }
        switch (tt) {
            case 1: ex.template dot<T, 1>(q, n_tiles, epi); break;
            case 2: ex.template dot<T, 2>(q, n_tiles, epi); break;
            case 4: ex.template dot<T, 4>(q, n_tiles, epi); break;
            default: ex.template dot<T, 8>(q, n_tiles, epi); break;
        }
    }
};

// The addresses a dot_inc reads (X, A and I of every block), as sorted disjoint
// ranges [first, last]; a strided view counts as its whole span.
inline std::vector<std::pair<int64_t, int64_t>> dot_reads(const InstrSpec& spec) {
    const auto& rows = spec.int_array("rows");
    const auto& cols = spec.int_array("cols");
    const auto& a = spec.int_array("A");
    const auto& a_rs = spec.int_array("A_rs");
    const auto& a_cs = spec.int_array("A_cs");
    const auto& x = spec.int_array("X");
    const auto& x_s = spec.int_array("X_s");
    const bool has_i = spec.ints.count("I") != 0;
    const std::vector<int64_t> none;
    const auto& init = has_i ? spec.int_array("I") : none;
    const auto& init_s = has_i ? spec.int_array("I_s") : none;
    std::vector<std::pair<int64_t, int64_t>> r;
    for (size_t b = 0; b < rows.size(); ++b) {
        if (rows[b] == 0) continue;
        if (cols[b] > 0) {
            r.push_back(view_span(x[b], cols[b], x_s[b], 1, 0));
            r.push_back(view_span(a[b], rows[b], a_rs[b], cols[b], a_cs[b]));
        }
        if (has_i && init[b] >= 0) r.push_back(view_span(init[b], rows[b], init_s[b], 1, 0));
    }
    std::sort(r.begin(), r.end());
    std::vector<std::pair<int64_t, int64_t>> merged;
    for (const auto& iv : r) {
        if (!merged.empty() && iv.first <= merged.back().second + 1)
            merged.back().second = std::max(merged.back().second, iv.second);
        else
            merged.push_back(iv);
    }
    return merged;
}

// The shape of a mat-vec's dense tiles (kernel_dense_dot.h): rows per tile
// (RT, 0: lane tiles) and trials per thread (TPT).  Dense tiles need weights
// shared by the trials (A in the shared pool); RT is the least power of two
// from 8 to 128 covering the most rows of a block; TPT the most of 8, 4, 2
// that gives at least 2 * kDenseMinTiles tiles (or NC_DOT_DENSE_TRIALS).
// NC_DOT_DENSE=1 then takes them where they should pay: a tile's trials at
// least half used, its rows too, and at least kDenseMinTiles tiles (a tile
// sums all its columns alone: a few rows of many columns, such as a
// convnet's output layer, would leave most of a GPU idle, where lane tiles
// have up to 32 threads a row).  NC_DOT_DENSE=2: wherever the weights are
// shared (tests); 0, the default until a GPU run has timed dense tiles
// (docs/cuda.md): never.
struct DenseShape {
    int rt = 0, tpt = 0;
};
constexpr int64_t kDenseMinTiles = 64;
static_assert(knobs::kDotDenseTrials.hi == kDenseTrialsPerThreadMax, "NC_DOT_DENSE_TRIALS' range");
inline DenseShape dense_shape(const std::vector<int64_t>& rows, const std::vector<int64_t>& cols,
                              const std::vector<int64_t>& a, int64_t f_shared, int n_trials) {
    const int64_t mode = env_knob(knobs::kDotDense);
    const int64_t fixed_tpt = env_knob(knobs::kDotDenseTrials);
    if (fixed_tpt != 0 && fixed_tpt != 2 && fixed_tpt != 4 && fixed_tpt != 8)
        throw std::invalid_argument("NC_DOT_DENSE_TRIALS='" + std::to_string(fixed_tpt) +
                                    "': expected an integer among 0 (chosen per mat-vec), 2, 4, 8");
    if (mode == 0) return {};
    int64_t most = 0, used = 0;
    for (size_t b = 0; b < rows.size(); ++b) {
        if (rows[b] == 0 || cols[b] == 0) continue;
        if (a[b] >= f_shared) return {};  // per-trial weights (learned)
        most = std::max(most, rows[b]);
        used += rows[b];
    }
    if (most == 0) return {};
    DenseShape d;
    d.rt = kDenseRowsMin;
    while (d.rt < kDenseRowsMax && d.rt < most) d.rt *= 2;
    int64_t tiled = 0;  // rows of all tiles
    for (size_t b = 0; b < rows.size(); ++b)
        if (rows[b] > 0 && cols[b] > 0) tiled += (rows[b] + d.rt - 1) / d.rt * d.rt;
    auto tiles = [&](int tpt) {
        const int tn = dense_trials(d.rt, tpt);
        return tiled / d.rt * ((n_trials + tn - 1) / tn);
    };
    d.tpt = fixed_tpt ? static_cast<int>(fixed_tpt) : kDenseTrialsPerThreadMax;
    while (!fixed_tpt && d.tpt > 2 && tiles(d.tpt) < 2 * kDenseMinTiles) d.tpt /= 2;
    if (mode == 2) return d;
    if (2 * n_trials < dense_trials(d.rt, d.tpt) || 2 * used < tiled ||
        tiles(d.tpt) < kDenseMinTiles)
        return {};
    return d;
}

// A mat-vec's tiles: per tile its first slot, number of slots, first trial
// and lanes per slot (DotParams); slots (block, row) in the order they are dealt.
struct DotTiles {
    std::vector<int64_t> slot_block, slot_row, slot0;
    std::vector<int32_t> slot_g, nslot, t0, g;
    void add(int64_t first_slot, int64_t n, int trial0, int lanes) {
        slot0.push_back(first_slot);
        nslot.push_back(static_cast<int32_t>(n));
        t0.push_back(trial0);
        g.push_back(lanes);
    }
};

// Dense tiles (kernel_dense_dot.h): RT consecutive rows of one block,
// dense_trials(RT, TPT) trials; slots in block order, one lane each.
inline DotTiles dense_tiles(const std::vector<int64_t>& rows, const std::vector<int64_t>& cols,
                            DenseShape d, int nt) {
    DotTiles t;
    for (size_t b = 0; b < rows.size(); ++b) {
        if (rows[b] == 0 || cols[b] == 0) continue;  // adds nothing (and has no I)
        const int64_t s0 = static_cast<int64_t>(t.slot_row.size());
        for (int64_t r = 0; r < rows[b]; ++r) {
            t.slot_block.push_back(static_cast<int64_t>(b));
            t.slot_row.push_back(r);
        }
        for (int64_t r0 = 0; r0 < rows[b]; r0 += d.rt)
            for (int t0 = 0; t0 < nt; t0 += dense_trials(d.rt, d.tpt))
                t.add(s0 + r0, std::min<int64_t>(d.rt, rows[b] - r0), t0, 1);
    }
    t.slot_g.assign(t.slot_row.size(), 1);
    return t;
}

// Lane tiles (kernel_dot.h): a block of c columns gets g lanes per row, the
// least power of two with g * NC_DOT_COLS_PER_LANE >= c (at most 32); rows of
// blocks with equal g are packed kDotThreads / g to a tile, for *tt trials
// (the least of 1, 2, 4, 8 covering the minibatch, at most NC_DOT_TRIALS;
// halved while the tiles are fewer than NC_DOT_MIN_TILES: a few rows of many
// columns, e.g. a convnet's output layer, are otherwise a few blocks of long sums).
inline DotTiles lane_tiles(const std::vector<int64_t>& rows, const std::vector<int64_t>& cols,
                           int nt, int* tt) {
    const int64_t cols_per_lane = env_knob(knobs::kDotColsPerLane);
    const int64_t min_tiles = env_knob(knobs::kDotMinTiles);
    *tt = trials_per_thread(nt, env_knob(knobs::kDotTrials));
    std::vector<int64_t> slot_block[6], slot_row[6];  // by log2(g)
    for (size_t b = 0; b < rows.size(); ++b) {
        if (rows[b] == 0 || cols[b] == 0) continue;  // adds nothing (and has no I)
        int lg = 0;
        while (lg < 5 && (int64_t{1} << lg) * cols_per_lane < cols[b]) ++lg;
        for (int64_t r = 0; r < rows[b]; ++r) {
            slot_block[lg].push_back(static_cast<int64_t>(b));
            slot_row[lg].push_back(r);
        }
    }
    auto count = [&] {
        int64_t n = 0;
        for (int lg = 0; lg < 6; ++lg) {
            const int64_t per_tile = kDotThreads >> lg;
            n += (static_cast<int64_t>(slot_row[lg].size()) + per_tile - 1) / per_tile;
        }
        return n * ((nt + *tt - 1) / *tt);
    };
    while (*tt > 1 && count() < min_tiles) *tt /= 2;
    DotTiles t;
    for (int lg = 0; lg < 6; ++lg) {
        const int g = 1 << lg;
        const int64_t per_tile = kDotThreads / g, n = static_cast<int64_t>(slot_row[lg].size());
        const int64_t first = static_cast<int64_t>(t.slot_row.size());
        for (int64_t s0 = 0; s0 < n; s0 += per_tile)
            for (int t0 = 0; t0 < nt; t0 += *tt) t.add(first + s0, std::min(per_tile, n - s0), t0, g);
        t.slot_block.insert(t.slot_block.end(), slot_block[lg].begin(), slot_block[lg].end());
        t.slot_row.insert(t.slot_row.end(), slot_row[lg].begin(), slot_row[lg].end());
        t.slot_g.insert(t.slot_g.end(), slot_row[lg].size(), g);
    }
    return t;
}

// A mat-vec (dot_inc): dense tiles where dense_shape allows, else lane tiles.
template <typename T>
InstrPtr<T> make_dot(const InstrSpec& spec, Program<T>& prog) {
    auto in = std::make_unique<DotInstr<T>>();
    const int nt = prog.n_trials();
    const auto& rows = spec.int_array("rows");
    const auto& cols = spec.int_array("cols");
    const DenseShape dense =
        dense_shape(rows, cols, spec.int_array("A"), prog.pools().f_shared, nt);
    in->q.dense_rt = dense.rt;
    in->q.dense_tpt = dense.tpt;
    if (dense.rt > 0)
        in->q.dense_stages = dense_stages<T>(dense.rt, dense.tpt,
                                             *std::max_element(cols.begin(), cols.end()));
    DotTiles tiles = dense.rt > 0 ? dense_tiles(rows, cols, dense, nt)
                                  : lane_tiles(rows, cols, nt, &in->tt);
    for (size_t s = 0; s < tiles.slot_row.size(); ++s) {
        in->max_g = std::max<int>(in->max_g, tiles.slot_g[s]);
        in->row_cost += std::max<int64_t>(1, cols[tiles.slot_block[s]] / 16);
    }
    if (tiles.slot0.size() > static_cast<size_t>(INT_MAX))
        throw std::invalid_argument("dot_inc: too many tiles for one launch");
    in->n_tiles = static_cast<int64_t>(tiles.slot0.size());
    auto& q = in->q;
    q.p = prog.pools();
    q.cols = prog.upload(cols);
    q.a = prog.upload(spec.int_array("A"));
    q.a_rs = prog.upload(spec.int_array("A_rs"));
    q.a_cs = prog.upload(spec.int_array("A_cs"));
    q.x = prog.upload(spec.int_array("X"));
    q.x_s = prog.upload(spec.int_array("X_s"));
    q.y = prog.upload(spec.int_array("Y"));
    q.y_s = prog.upload(spec.int_array("Y_s"));
    if (spec.ints.count("I")) {  // (checked by the CPU factory)
        q.init = prog.upload(spec.int_array("I"));
        q.init_s = prog.upload(spec.int_array("I_s"));
    }
    q.slot_block = prog.upload(tiles.slot_block);
    q.slot_row = prog.upload(tiles.slot_row);
    q.tile_slot0 = prog.upload(tiles.slot0);
    q.tile_nslot = prog.upload(tiles.nslot);
    q.tile_t0 = prog.upload(tiles.t0);
    q.tile_g = prog.upload(tiles.g);
    in->rows.q = q;
    in->rows.n_slots = static_cast<int64_t>(tiles.slot_row.size());
    if (!tiles.slot_g.empty()) in->rows.slot_g = prog.upload(tiles.slot_g);
    in->slot_block = std::move(tiles.slot_block);
    in->slot_row = std::move(tiles.slot_row);
    in->y = spec.int_array("Y");
    in->y_s = spec.int_array("Y_s");
    in->reads = dot_reads(spec);
    return in;
}

// --- functors over n indices ---------------------------------------------------
// f(0), ..., f(n - 1) as one launch
template <typename T, typename F>
typename DInstr<T>::Launch for_each_launch(int64_t n, F f) {
    return [n, f](Exec& ex, const StepRef<T>&) { ex.for_each(n, f); };
}

// the same as phases: one where F is a phase kind (phases.h), else none
template <typename F>
std::vector<PhasePart> for_each_phases(const F& f, int64_t n) {
    if constexpr (phase_kind<F>() >= 0)
        return {phase_part(f, n)};
    else
        return {};
}

template <typename T>
struct ForEachInstr : DInstr<T> {
    typename DInstr<T>::Launch body;
    std::vector<PhasePart> parts;  // for functors that may run as a phase
    void launch(Exec& ex, const StepRef<T>& s) override { body(ex, s); }
    std::vector<PhasePart> phase_parts(const RunCtrl<T>*) const override { return parts; }
    template <typename F>
    void run_each(int64_t n, F f) {
        body = for_each_launch<T>(n, f);
        parts = for_each_phases(f, n);
    }
};

template <typename T, typename F>
InstrPtr<T> for_each_instr(int64_t n, F f) {
    auto in = std::make_unique<ForEachInstr<T>>();
    in->run_each(n, f);
    return in;
}

// --- sparse_dot_inc -----------------------------------------------------------

template <typename T>
InstrPtr<T> make_sparse_dot(const InstrSpec& spec, Program<T>& prog) {
    SparseDot<T> k;
    k.p = prog.pools();
    const auto& indptr = spec.int_array("indptr");
    k.rows = static_cast<int64_t>(indptr.size()) - 1;
    k.indptr = prog.upload(indptr);
    k.indices = prog.upload(spec.int_array("indices"));
    k.data = prog.upload(to_scalar_vector<T>(spec.float_array("data")));
    k.x = int_scalar(spec, "X");
    k.x_s = int_scalar(spec, "X_s");
    k.y = int_scalar(spec, "Y");
    k.y_s = int_scalar(spec, "Y_s");
    return for_each_instr<T>(k.rows * prog.n_trials(), k);
}

// --- conv_inc -----------------------------------------------------------------
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
InstrPtr<T> make_conv_dense(const ConvStep<T>& k, const std::vector<int64_t>& indptr, int nt) {
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
    int64_t most_terms = 0;
    for (size_t o = 0; o + 1 < indptr.size(); ++o)
        most_terms = std::max(most_terms, (indptr[o + 1] - indptr[o]) * k.g.cg);
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
    const auto& indptr = spec.int_array("indptr");
    k.rows = static_cast<int64_t>(indptr.size()) - 1;
    auto& g = k.g;
    g.indptr = prog.upload(indptr);
    g.pos = prog.upload(spec.int_array("pos"));
    g.tap = prog.upload(spec.int_array("tap"));
    g.x_ps = int_scalar(spec, "X_ps");
    g.x_cs = int_scalar(spec, "X_cs");
    g.y_ps = int_scalar(spec, "Y_ps");
    g.y_cs = int_scalar(spec, "Y_cs");
    g.filters = int_scalar(spec, "filters");
    const int64_t groups = int_scalar(spec, "groups");
    g.cg = int_scalar(spec, "in_channels") / groups;
    g.fpg = g.filters / groups;
    k.x = int_scalar(spec, "X");
    k.y = int_scalar(spec, "Y");
    k.w = int_scalar(spec, "W");
    k.set = spec.scalar("set", 0.0) != 0.0;
    if (k.w >= prog.pools().f_shared)  // per-trial weights: one thread per output element
        return for_each_instr<T>(k.rows * g.filters * prog.n_trials(), k);
    const int nt = prog.n_trials();
    if (auto dense = make_conv_dense(k, indptr, nt)) return dense;
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

// --- neurons ------------------------------------------------------------------
// A mat-vec's epilogue that updates the neuron whose input the tile just wrote.
// With Defer, a dense tile's thread defers LIF's rare branches over its trials.
template <typename T, typename M, bool Defer = false>
struct NeuronEpilogue {
    static constexpr bool kByTrials = true;
    NeuronStep<T, M> step;
    const int64_t* neuron = nullptr;  // per slot of the mat-vec
    NC_HD void operator()(int64_t slot, int t) const { step.element(neuron[slot], t); }
    // A dense tile's thread's N trials of the row: the neuron's parameters once.
    template <int N>
    NC_HD void trials(int64_t slot, int first) const {
        step.template trials<N, Defer>(neuron[slot], first);
    }
};

// Neuron kinds whose update may run inside the mat-vec that writes their input.
template <typename M>
constexpr bool kFusible = std::is_same_v<M, models::LIF> || std::is_same_v<M, models::LIFRate> ||
                          std::is_same_v<M, models::RectifiedLinear> ||
                          std::is_same_v<M, models::SpikingRectifiedLinear>;

template <typename T, typename M>
struct NeuronInstr : DInstr<T> {
    NeuronStep<T, M> k;
    std::vector<int64_t> J;       // host copy of the input addresses
    std::vector<int64_t> outputs;  // host copy of the output and state addresses
    int64_t n_trials = 1;
    int tt = 1;  // trials a thread updates (NC_NEURON_TRIALS)
    bool defer = false;  // its threads defer LIF's rare branches (NC_NEURON_DEFER)
    void launch(Exec& ex, const StepRef<T>&) override {
        switch (tt) {
            case 8: return launch_trials<8>(ex);
            case 4: return launch_trials<4>(ex);
            case 2: return launch_trials<2>(ex);
            default: return ex.for_each(k.n * n_trials, k);
        }
    }
    template <int TT>
    void launch_trials(Exec& ex) const {
        const int64_t threads = k.n * ((n_trials + TT - 1) / TT);
        if constexpr (Deferrable<M>::value)
            if (defer) return ex.for_each(threads, NeuronTrials<T, M, TT, true>{k});
        ex.for_each(threads, NeuronTrials<T, M, TT>{k});
    }
    int neuron_trials() const override { return tt; }
    bool defers_rare() const override { return defer; }
    bool writes(std::vector<int64_t>& out) const override {
        out.insert(out.end(), outputs.begin(), outputs.end());
        return true;
    }
    std::vector<PhasePart> phase_parts(const RunCtrl<T>*) const override {
        return for_each_phases(k, k.n * n_trials);
    }

    // Fused with `dot` when dot's rows write every input J[k] exactly once and
    // nothing else: then each row's tile, having written J[k] for a trial,
    // updates neuron k of that trial (the last write of J before the update,
    // as the instructions are adjacent; the tiles cover every row and trial once).
    // Not when the update writes what dot reads (a recurrent connection from
    // these neurons' outputs): other tiles may still read it.
    typename DInstr<T>::Fused after_dot(Program<T>& prog, const DotInstr<T>& dot) override {
        if constexpr (!kFusible<M>) {
            return {};
        } else {
            if (!prog.fuse_neurons() || static_cast<int64_t>(dot.slot_row.size()) != k.n) return {};
            for (int64_t a : outputs)
                if (dot.reads_any(a)) return {};
            std::unordered_map<int64_t, int64_t> neuron_of;
            for (int64_t i = 0; i < k.n; ++i)
                if (!neuron_of.emplace(J[i], i).second) return {};
            std::vector<int64_t> neuron(dot.slot_row.size());
            std::vector<char> seen(k.n, 0);
            for (size_t s = 0; s < neuron.size(); ++s) {
                auto it = neuron_of.find(dot.slot_output(s));
                if (it == neuron_of.end() || seen[it->second]) return {};
                seen[it->second] = 1;
                neuron[s] = it->second;
            }
            const int64_t* slots = prog.upload(neuron);
            if constexpr (Deferrable<M>::value)
                if (defer) return {dot.with_epilogue(NeuronEpilogue<T, M, true>{k, slots}), {}, {}};
            return {dot.with_epilogue(NeuronEpilogue<T, M>{k, slots}), {}, {}};
        }
    }
};

template <typename T, typename M>
InstrPtr<T> make_neurons(const InstrSpec& spec, Program<T>& prog,
                         std::vector<std::string> states, std::vector<std::string> params) {
    static_assert(M::NS <= kMaxNeuronStates && M::NP <= kMaxNeuronParams, "model too large");
    if (static_cast<int>(states.size()) != M::NS || static_cast<int>(params.size()) != M::NP)
        throw std::logic_error(spec.kind + ": operand names do not match the device model");
    auto in = std::make_unique<NeuronInstr<T, M>>();
    in->n_trials = prog.n_trials();
    in->tt = trials_per_thread(prog.n_trials(), env_knob(knobs::kNeuronTrials));
    in->defer = Deferrable<M>::value && env_knob(knobs::kNeuronDefer) != 0;
    NeuronStep<T, M>& k = in->k;
    k.p = prog.pools();
    const auto& J = in->J = spec.int_array("J");
    k.n = static_cast<int64_t>(J.size());
    k.J = prog.addr(J);
    k.out = prog.addr(spec.int_array("out"));
    for (int j = 0; j < M::NS; ++j) k.state[j] = prog.addr(spec.int_array(states[j]));
    in->outputs = spec.int_array("out");
    for (const auto& name : states) {
        const auto& a = spec.int_array(name);
        in->outputs.insert(in->outputs.end(), a.begin(), a.end());
    }
    std::vector<std::vector<T>> q(M::NP);
    for (int j = 0; j < M::NP; ++j) {
        q[j] = to_scalar_vector<T>(spec.float_array(params[j]));
        k.param[j] = prog.upload(q[j]);
    }
    k.dt = static_cast<T>(prog.dt());
    if constexpr (M::has_aux) {
        // the per-neuron constant, computed on the host exactly as the CPU kernel does
        std::vector<T> aux(k.n);
        T p[M::NP > 0 ? M::NP : 1];
        for (int64_t i = 0; i < k.n; ++i) {
            for (int j = 0; j < M::NP; ++j) p[j] = q[j][i];
            aux[i] = M::template aux<T>(p, k.dt);
        }
        k.aux = prog.upload(aux);
    }
    return in;
}

// --- linear filters -------------------------------------------------------------
// A mat-vec's epilogue that filters the output the tile just wrote: element
// elem[slot] of `f` (whose input is that output), if any.
template <typename T>
struct FilterEpilogue {
    static constexpr bool kByTrials = false;
    LtiElementwise<T> f;
    const int64_t* elem = nullptr;  // per slot of the mat-vec: element of f, or -1
    NC_HD void operator()(int64_t slot, int t) const {
        const int64_t k = elem[slot];
        if (k >= 0) f.element(k, t);
    }
};

template <typename T>
struct LtiInstr : ForEachInstr<T> {
    // host copies of the elements' operands, to split them between a
    // mat-vec's epilogue and the rest (after_dot)
    std::vector<int64_t> u, y, x, form, inc;
    std::vector<double> a, b;
    bool serial = false;

    bool writes(std::vector<int64_t>& out) const override {
        out.insert(out.end(), y.begin(), y.end());
        for (size_t e = 0; e < x.size(); ++e)
            if (form[e] != filters::kNoX) out.push_back(x[e]);
        return true;
    }

    // threads of a launch of k: one per trial (serial) or per element and trial
    static int64_t threads(const LtiElementwise<T>& k, int n_trials) {
        return k.n == 0 ? 0 : k.serial ? n_trials : k.n * n_trials;
    }

    // elements `which` (all: every element) as one functor
    LtiElementwise<T> functor(Program<T>& prog, const std::vector<size_t>& which) const {
        auto pick = [&which](const auto& v) {
            std::decay_t<decltype(v)> out;
            for (size_t e : which) out.push_back(v[e]);
            return out;
        };
        LtiElementwise<T> k;
        k.p = prog.pools();
        k.n = static_cast<int64_t>(which.size());
        k.serial = serial;
        k.u = prog.addr(pick(u));
        k.y = prog.addr(pick(y));
        k.x = prog.upload(pick(x));
        k.form = prog.upload(pick(form));
        k.inc = prog.upload(pick(inc));
        const std::vector<double> a_k = pick(a), b_k = pick(b);
        k.a = prog.upload(to_scalar_vector<T>(a_k));
        k.b = prog.upload(to_scalar_vector<T>(b_k));
        k.a_wide = prog.upload(a_k);
        k.b_wide = prog.upload(b_k);
        return k;
    }

    // Fused with `dot` (NC_FUSE_FILTERS=1): an element whose input `dot`
    // writes is filtered by the tile that wrote it, right after; the others
    // run after the mat-vec (`rest`).  Not when a filter writes what `dot`
    // reads or writes (other tiles may still read it), nor for filters that
    // accumulate into one output in order (serial).
    typename DInstr<T>::Fused after_dot(Program<T>& prog, const DotInstr<T>& dot) override {
        if (!prog.fuse_filters() || serial || y.empty()) return {};
        std::unordered_map<int64_t, int64_t> slot_of;  // output address -> slot
        for (size_t s = 0; s < dot.slot_row.size(); ++s)
            if (!slot_of.emplace(dot.slot_output(s), static_cast<int64_t>(s)).second) return {};
        auto touched = [&](int64_t addr) { return dot.reads_any(addr) || slot_of.count(addr); };
        for (size_t e = 0; e < y.size(); ++e)
            if (touched(y[e]) || (form[e] != filters::kNoX && touched(x[e]))) return {};
        std::vector<int64_t> elem(dot.slot_row.size(), -1);
        std::vector<size_t> fused, rest;
        for (size_t e = 0; e < u.size(); ++e) {
            auto it = slot_of.find(u[e]);
            if (it != slot_of.end() && elem[it->second] < 0) {
                elem[it->second] = static_cast<int64_t>(fused.size());
                fused.push_back(e);
            } else {
                rest.push_back(e);  // not an output of dot, or a second filter of one
            }
        }
        if (fused.empty()) return {};
        typename DInstr<T>::Fused f;
        f.launch = dot.with_epilogue(FilterEpilogue<T>{functor(prog, fused), prog.upload(elem)});
        if (!rest.empty()) {
            const LtiElementwise<T> k = functor(prog, rest);
            const int64_t n = threads(k, prog.n_trials());
            f.rest = for_each_launch<T>(n, k);
            f.rest_parts = for_each_phases(k, n);
        }
        return f;
    }
};

template <typename T>
InstrPtr<T> make_lti_elementwise(const InstrSpec& spec, Program<T>& prog) {
    auto in = std::make_unique<LtiInstr<T>>();
    in->u = spec.int_array("U");
    in->y = spec.int_array("Y");
    in->x = spec.int_array("X");
    in->form = spec.int_array("form");
    in->inc = spec.int_array("inc");
    in->a = spec.float_array("a");
    in->b = spec.float_array("b");
    in->serial = has_duplicates(in->y);
    std::vector<size_t> all(in->y.size());
    for (size_t e = 0; e < all.size(); ++e) all[e] = e;
    const LtiElementwise<T> k = in->functor(prog, all);
    in->run_each(LtiInstr<T>::threads(k, prog.n_trials()), k);
    return in;
}

template <typename T>
InstrPtr<T> make_lti_state_space(const InstrSpec& spec, Program<T>& prog) {
    LtiStateSpace<T> k;
    k.p = prog.pools();
    const auto& n = spec.int_array("n");
    const auto& m = spec.int_array("m");
    std::vector<int64_t> elem0, a0, bc0, block;
    int64_t elems = 0, a_size = 0, bc_size = 0, max_n = 1;
    for (size_t j = 0; j < n.size(); ++j) {
        elem0.push_back(elems);
        a0.push_back(a_size);
        bc0.push_back(bc_size);
        for (int64_t e = 0; e < m[j]; ++e) block.push_back(static_cast<int64_t>(j));
        elems += m[j];
        a_size += n[j] * n[j];
        bc_size += n[j];
        max_n = std::max(max_n, n[j]);
    }
    const auto& y = spec.int_array("Y");
    k.n_elem = elems;
    k.max_n = max_n;
    k.serial = has_duplicates(y);
    k.n = prog.upload(n);
    k.m = prog.upload(m);
    k.x = prog.upload(spec.int_array("X"));
    k.general = prog.upload(spec.int_array("general"));
    k.inc = prog.upload(spec.int_array("inc"));
    k.elem0 = prog.upload(elem0);
    k.a0 = prog.upload(a0);
    k.bc0 = prog.upload(bc0);
    k.A = prog.upload(spec.float_array("A"));
    k.B = prog.upload(spec.float_array("B"));
    k.C = prog.upload(spec.float_array("C"));
    k.D = prog.upload(spec.float_array("D"));
    k.block = prog.upload(block);
    k.u = prog.addr(spec.int_array("U"));
    k.y = prog.addr(y);
    const int64_t threads = k.serial ? prog.n_trials() : elems * prog.n_trials();
    k.scratch = prog.template scratch<double>(static_cast<size_t>(std::max<int64_t>(threads, 1)) * max_n);
    return for_each_instr<T>(elems ? threads : 0, k);
}

// --- process_table ------------------------------------------------------------------
template <typename T>
struct TableInstr : DInstr<T> {
    ProcessTable<T> k;
    std::vector<int64_t> m, period, shared;
    int n_trials = 1;
    bool loaded = false, stepped = false;
    int64_t step_rows = 0;
    std::vector<int64_t> slot;  // per op: its column of the rows table, or -1
    int64_t row_steps = 0;      // steps the rows table covers
    TableState host_state;      // what `state` holds
    Growable table, rows;
    TableState* state = nullptr;  // device
    int64_t* offset = nullptr;    // device, per op
    std::vector<double> host_table;

    // threads of the kernel: one per trial (serial) or per element and trial
    int64_t threads() const { return k.n_elem == 0 ? 0 : k.serial ? n_trials : k.n_elem * n_trials; }

    void launch(Exec& ex, const StepRef<T>& s) override {
        ProcessTable<T> kk = k;
        kk.step = s;
        ex.for_each(threads(), kk);
    }

    std::vector<PhasePart> phase_parts(const RunCtrl<T>* ctrl) const override {
        ProcessTable<T> kk = k;
        kk.step = StepRef<T>{ctrl, 0};
        return {phase_part(kk, threads())};
    }

    void check_run(int64_t n_steps) const override {
        if (k.n_elem == 0) return;
        if (!loaded) throw std::logic_error("process_table: table not loaded");
        if (stepped && n_steps > step_rows)
            throw std::logic_error("process_table: no table row for step " +
                                   std::to_string(step_rows) + " of this run");
        if (k.n_indexed > 0 && n_steps > row_steps)
            throw std::logic_error("process_table: no row index for step " +
                                   std::to_string(row_steps) + " of this run");
    }

    // The indexed operators' rows for the steps of the next run (the same
    // checks as the CPU ProcessTable::set_table).
    void set_rows(Program<T>& prog, std::vector<double> data) {
        row_steps = processes::check_table_rows(period, slot, k.n_indexed, data);
        rows.ensure(prog.mem(), data.size() * sizeof(double));
        prog.exec().h2d(rows.ptr, data.data(), data.size() * sizeof(double));
        host_state.rows = reinterpret_cast<const double*>(rows.ptr);
        prog.exec().h2d(reinterpret_cast<uint64_t>(state), &host_state, sizeof(host_state));
        prog.exec().sync();  // `data` goes out of scope
    }

    void set_table(Program<T>& prog, const std::string& name, std::vector<double> data) override {
        if (name == "rows") return set_rows(prog, std::move(data));
        if (name != "table") return DInstr<T>::set_table(prog, name, std::move(data));
        // the same checks and layout as the CPU ProcessTable::set_table
        const processes::TableLayout layout = processes::table_layout(
            m, period, shared, n_trials, static_cast<int64_t>(data.size()));
        TableState& st = host_state;
        st.per_trial = layout.per_trial;
        st.step_rows = step_rows = layout.step_rows;
        const std::vector<int64_t>& off = layout.offset;
        host_table = std::move(data);
        table.ensure(prog.mem(), host_table.size() * sizeof(double));
        if (!host_table.empty())
            prog.exec().h2d(table.ptr, host_table.data(), host_table.size() * sizeof(double));
        st.table = reinterpret_cast<const double*>(table.ptr);
        if (!off.empty())
            prog.exec().h2d(reinterpret_cast<uint64_t>(offset), off.data(), off.size() * sizeof(int64_t));
        prog.exec().h2d(reinterpret_cast<uint64_t>(state), &st, sizeof(st));
        prog.exec().sync();  // the host copies above may go out of scope
        loaded = true;
    }
};

template <typename T>
InstrPtr<T> make_process_table(const InstrSpec& spec, Program<T>& prog) {
    auto in = std::make_unique<TableInstr<T>>();
    in->m = spec.int_array("m");
    in->period = spec.int_array("period");
    in->shared = spec.int_array("shared");
    in->n_trials = prog.n_trials();
    in->stepped = std::find(in->period.begin(), in->period.end(), 0) != in->period.end();
    std::vector<int64_t> elem0, op;
    int64_t e = 0;
    for (size_t j = 0; j < in->m.size(); ++j) {
        elem0.push_back(e);
        for (int64_t k = 0; k < in->m[j]; ++k) op.push_back(static_cast<int64_t>(j));
        e += in->m[j];
    }
    auto& k = in->k;
    const auto& y = spec.int_array("Y");
    k.p = prog.pools();
    k.n_elem = e;
    k.serial = has_duplicates(y);
    k.dt = prog.dt();
    k.time = int_scalar(spec, "time");
    k.m = prog.upload(in->m);
    k.period = prog.upload(in->period);
    k.inc = prog.upload(spec.int_array("inc"));
    k.shared = prog.upload(in->shared);
    k.elem0 = prog.upload(elem0);
    k.op = prog.upload(op);
    processes::IndexedSlots slots = processes::indexed_slots(in->period);
    in->slot = std::move(slots.slot);
    k.slot = prog.upload(in->slot);
    k.n_indexed = slots.n;
    k.y = prog.addr(y);
    in->state = prog.template scratch<TableState>(1);
    in->offset = prog.template scratch<int64_t>(std::max<size_t>(in->m.size(), 1));
    k.state = in->state;
    k.offset = in->offset;
    return in;
}

// --- learning rules ------------------------------------------------------------------
template <typename T, int R>
InstrPtr<T> make_learning(const InstrSpec& spec, Program<T>& prog) {
    Learning<T, R> k;
    k.p = prog.pools();
    const auto& rows = spec.int_array("rows");
    const auto& cols = spec.int_array("cols");
    const auto& lr = spec.float_array("learning_rate");
    const size_t nb = rows.size();
    std::vector<int64_t> work0{0}, row0;
    int64_t total_rows = 0;
    for (size_t b = 0; b < nb; ++b) {
        work0.push_back(work0.back() + rows[b] * cols[b]);
        row0.push_back(total_rows);
        total_rows += rows[b];
    }
    k.work = work0.back();
    k.nb = static_cast<int64_t>(nb);
    k.rows = prog.upload(rows);
    k.cols = prog.upload(cols);
    k.work0 = prog.upload(work0);
    k.row0 = prog.upload(row0);
    k.delta = prog.upload(spec.int_array("delta"));
    k.delta_rs = prog.upload(spec.int_array("delta_rs"));
    k.delta_cs = prog.upload(spec.int_array("delta_cs"));
    k.pre = prog.upload(spec.int_array("pre"));
    k.pre_s = prog.upload(spec.int_array("pre_s"));
    const char* v1 = R == kPES ? "error" : "post";
    k.v1 = prog.upload(spec.int_array(v1));
    k.v1_s = prog.upload(spec.int_array(std::string(v1) + "_s"));
    std::vector<T> alpha(nb), coef(nb, T(0));
    const double dt = prog.dt();
    for (size_t b = 0; b < nb; ++b)
        alpha[b] = R == kPES ? static_cast<T>(learning::pes_alpha(lr[b], dt, cols[b]))
                             : static_cast<T>(lr[b] * dt);
    if (R == kBCM) {
        k.v2 = prog.upload(spec.int_array("theta"));
        k.v2_s = prog.upload(spec.int_array("theta_s"));
    }
    if (R == kOja || R == kVoja) {
        const char* mat = R == kOja ? "weights" : "encoders";
        k.mat = prog.upload(spec.int_array(mat));
        k.mat_rs = prog.upload(spec.int_array(std::string(mat) + "_rs"));
        k.mat_cs = prog.upload(spec.int_array(std::string(mat) + "_cs"));
    }
    if (R == kOja) {
        const auto& beta = spec.float_array("beta");
        for (size_t b = 0; b < nb; ++b) coef[b] = static_cast<T>(-beta[b]);
    }
    if (R == kVoja) {
        k.signal = prog.upload(spec.int_array("signal"));
        k.scale = prog.upload(to_scalar_vector<T>(spec.float_array("scale")));
    }
    k.alpha = prog.upload(alpha);
    k.coef = prog.upload(coef);
    k.inc = spec.scalar("inc", 0.0) != 0.0;
    return for_each_instr<T>(k.work * prog.n_trials(), k);
}

// --- learning_rls -------------------------------------------------------------------
template <typename T>
struct RlsInstr : DInstr<T> {
    RlsViews<T> v;
    int n_trials = 1;
    void launch(Exec& ex, const StepRef<T>&) override {
        ex.for_each(v.n * n_trials, RlsPr<T>{v});
        ex.for_each(n_trials, RlsGain<T>{v});
        ex.for_each(v.n * (v.n + v.m) * n_trials, RlsUpdate<T>{v});
    }
    int64_t launches() const override { return 3; }
};

template <typename T>
InstrPtr<T> make_rls(const InstrSpec& spec, Program<T>& prog) {
    auto in = std::make_unique<RlsInstr<T>>();
    auto& v = in->v;
    in->n_trials = prog.n_trials();
    v.p = prog.pools();
    v.n = int_scalar(spec, "n");
    v.m = int_scalar(spec, "m");
    v.P = int_scalar(spec, "P"), v.P_rs = int_scalar(spec, "P_rs");
    v.P_cs = int_scalar(spec, "P_cs");
    v.r = int_scalar(spec, "r"), v.r_s = int_scalar(spec, "r_s");
    v.e = int_scalar(spec, "error"), v.e_s = int_scalar(spec, "error_s");
    v.d = int_scalar(spec, "delta"), v.d_rs = int_scalar(spec, "delta_rs");
    v.d_cs = int_scalar(spec, "delta_cs");
    v.pr = prog.template scratch<T>(static_cast<size_t>(v.n) * in->n_trials);
    v.gain = prog.template scratch<T>(static_cast<size_t>(in->n_trials));
    return in;
}

// --- the registry ------------------------------------------------------------------
template <typename T>
std::unique_ptr<DInstr<T>> Program<T>::make(const InstrSpec& spec) {
    const std::string& kind = spec.kind;
    using S = std::vector<std::string>;
    namespace md = models;
    if (kind == "time_update" || kind == "reset" || kind == "copy" || kind == "copy_runs" ||
        kind == "elementwise_inc")
        return make_simple<T>(spec);
    if (kind == "dot_inc") return make_dot<T>(spec, *this);
    if (kind == "sparse_dot_inc") return make_sparse_dot<T>(spec, *this);
    if (kind == "conv_inc") return make_conv<T>(spec, *this);
    if (kind == "lti_elementwise") return make_lti_elementwise<T>(spec, *this);
    if (kind == "lti_state_space") return make_lti_state_space<T>(spec, *this);
    if (kind == "process_table") return make_process_table<T>(spec, *this);
    if (kind == "learning_pes") return make_learning<T, kPES>(spec, *this);
    if (kind == "learning_bcm") return make_learning<T, kBCM>(spec, *this);
    if (kind == "learning_oja") return make_learning<T, kOja>(spec, *this);
    if (kind == "learning_voja") return make_learning<T, kVoja>(spec, *this);
    if (kind == "learning_rls") return make_rls<T>(spec, *this);
    // neuron types: operand names as in lowering/neurons.py and instr_neurons.cpp
    if (kind == "neurons_rectified_linear")
        return make_neurons<T, md::RectifiedLinear>(spec, *this, S{}, S{"amplitude"});
    if (kind == "neurons_spiking_rectified_linear")
        return make_neurons<T, md::SpikingRectifiedLinear>(spec, *this, S{"voltage"},
                                                           S{"spike_height"});
    if (kind == "neurons_sigmoid")
        return make_neurons<T, md::Sigmoid>(spec, *this, S{}, S{"tau_ref"});
    if (kind == "neurons_tanh") return make_neurons<T, md::Tanh>(spec, *this, S{}, S{"tau_ref"});
    if (kind == "neurons_lif_rate")
        return make_neurons<T, md::LIFRate>(spec, *this, S{},
                                            S{"tau_rc", "tau_ref", "amplitude"});
    if (kind == "neurons_lif")
        return make_neurons<T, md::LIF>(spec, *this, S{"voltage", "refractory_time"},
                                        S{"tau_rc", "tau_ref", "min_voltage", "spike_height"});
    if (kind == "neurons_adaptive_lif_rate")
        return make_neurons<T, md::AdaptiveLIFRate>(
            spec, *this, S{"adaptation"}, S{"tau_n", "inc_n", "tau_rc", "tau_ref", "amplitude"});
    if (kind == "neurons_adaptive_lif")
        return make_neurons<T, md::AdaptiveLIF>(
            spec, *this, S{"voltage", "refractory_time", "adaptation"},
            S{"tau_n", "inc_n", "tau_rc", "tau_ref", "min_voltage", "spike_height"});
    if (kind == "neurons_izhikevich")
        return make_neurons<T, md::Izhikevich>(
            spec, *this, S{"voltage", "recovery"},
            S{"tau_recovery", "coupling", "reset_voltage", "reset_recovery", "spike_height"});
    if (kind == "neurons_regular_spiking")
        return make_neurons<T, md::RegularSpiking>(spec, *this, S{"voltage"}, S{"spike_height"});
    if (kind == "neurons_leaky_relu")
        return make_neurons<T, md::LeakyReLU>(spec, *this, S{}, S{"amplitude", "negative_slope"});
    if (kind == "neurons_spiking_leaky_relu")
        return make_neurons<T, md::SpikingLeakyReLU>(spec, *this, S{"voltage"},
                                                     S{"spike_height", "negative_slope"});
    if (kind == "neurons_soft_lif_rate")
        return make_neurons<T, md::SoftLIFRate>(spec, *this, S{},
                                                S{"tau_rc", "tau_ref", "amplitude", "sigma"});
    throw std::invalid_argument("the CUDA backend has no kernel for instruction kind '" + kind +
                                "'");
}

}  // namespace NC_DEV_NS
}  // namespace nc
