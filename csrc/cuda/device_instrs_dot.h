// Loading dot_inc (mat-vec tiles, tiled or dense, with the epilogues of
// the instructions fused into them) and sparse_dot_inc.
// Included by device_instrs.h, after its shared helpers.
#pragma once

namespace nc {
namespace NC_DEV_NS {

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

// sparse_dot_inc: its data (constant in a run) is replaced between runs by
// training and load_params (table "data"), in place: launches and captured
// graphs keep reading the same device array.
template <typename T>
struct SparseDotInstr : ForEachInstr<T> {
    T* data = nullptr;  // device, `nnz` values
    size_t nnz = 0;
    void set_table(Program<T>& prog, const std::string& name, std::vector<double> values) override {
        if (name != "data") return DInstr<T>::set_table(prog, name, std::move(values));
        if (values.size() != nnz)
            throw std::invalid_argument("sparse_dot_inc: data of " +
                                        std::to_string(values.size()) + " values for " +
                                        std::to_string(nnz) + " nonzeros");
        const std::vector<T> host = to_scalar_vector<T>(values);
        if (nnz > 0) prog.exec().h2d(reinterpret_cast<uint64_t>(data), host.data(), nnz * sizeof(T));
        prog.exec().sync();  // `host` goes out of scope
    }
};

template <typename T>
InstrPtr<T> make_sparse_dot(const InstrSpec& spec, Program<T>& prog) {
    SparseDot<T> k;
    k.p = prog.pools();
    const auto& indptr = spec.int_array("indptr");
    k.rows = static_cast<int64_t>(indptr.size()) - 1;
    k.indptr = prog.upload(indptr);
    k.indices = prog.upload(spec.int_array("indices"));
    const std::vector<T> data = to_scalar_vector<T>(spec.float_array("data"));
    k.data = prog.upload(data);
    k.x = int_scalar(spec, "X");
    k.x_s = int_scalar(spec, "X_s");
    k.y = int_scalar(spec, "Y");
    k.y_s = int_scalar(spec, "Y_s");
    auto in = std::make_unique<SparseDotInstr<T>>();
    in->data = const_cast<T*>(k.data);
    in->nnz = data.size();
    in->run_each(k.rows * prog.n_trials(), k);
    return in;
}

}  // namespace NC_DEV_NS
}  // namespace nc
