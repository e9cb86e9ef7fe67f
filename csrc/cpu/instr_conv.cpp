// ConvInc / ConvTransposeInc: the gather of csrc/kernels/conv.h, per trial and
// output position; the filters of one group accumulate together in vector
// registers (W's filter axis is contiguous; AVX-512, AVX2 or SSE2 vectors, as
// the CPU has them), and tiles of 4 trials, or of 4 output positions whose
// pairs are shifts of each other, share weight loads.
#include <algorithm>
#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "../kernels/conv.h"
#include "conv_spec.h"
#include "parallel.h"
#include "program.h"
#include "simd.h"

namespace nc {
namespace {

// An output position's pairs, as the CPU loops read them: conv::row's pairs
// relative to the row's first input position, listed once per pattern (rows
// with the same taps share one list: a convolution has few patterns, the
// interior's and the borders'), so the loops load offsets as they did from
// per-pair tables without their memory (a 31 x 31 kernel over 128 x 128
// positions has 14 M pairs and about 2,000 patterns).
struct Pairs {
    const int64_t* dpos;  // input position - pos, per pair
    const int64_t* tap;   // kernel tap, per pair
    int64_t begin, end;   // the row's pairs in those lists
    int64_t pos;          // the row's first input position
};

// Filters [f0, f0 + NV * lanes) of the output position of row r for NT trials
// (X[i], Y[i]: trial i's operands; the trials share W, so each weight vector
// loaded serves all NT), in NT * NV vector registers, added to Y (or, with
// `set`, written to it).  Each output element sums its terms in
// conv::accumulate's order (pairs in order, then channels); this file opts
// into FMA, as the dense products do.
template <typename T, int B, int NT, int NV>
NC_INLINE void conv_tile(const conv::Geometry& g, const Pairs& r, const T* const* X,
                         const T* W, T* const* Y, int64_t f0, bool set) {
    using S = Simd<T, B>;
    using V = typename S::V;
    V acc[NT][NV];
    for (int i = 0; i < NT; ++i)
        for (int j = 0; j < NV; ++j) acc[i][j] = S::splat(T(0));
    const int64_t c0 = (f0 / g.fpg) * g.cg;
    for (int64_t k = r.begin; k < r.end; ++k) {
        const int64_t xk = (r.pos + r.dpos[k]) * g.x_ps + c0 * g.x_cs;
        const T* w = W + r.tap[k] * g.cg * g.filters + f0;
        for (int64_t c = 0; c < g.cg; ++c) {
            V wv[NV];
            for (int j = 0; j < NV; ++j) wv[j] = S::load(w + c * g.filters + j * S::W);
            for (int i = 0; i < NT; ++i) {
                const V xv = NC_BROADCAST(V, X[i][xk + c * g.x_cs]);
                for (int j = 0; j < NV; ++j) acc[i][j] += wv[j] * xv;
            }
        }
    }
    for (int i = 0; i < NT; ++i) {
        if (g.y_cs == 1) {  // filters contiguous (channels last): whole vectors
            for (int j = 0; j < NV; ++j) {
                T* y = Y[i] + f0 + j * S::W;
                S::store(y, set ? acc[i][j] : S::load(y) + acc[i][j]);
            }
            continue;
        }
        T sums[NV * S::W];
        for (int j = 0; j < NV; ++j) S::store(sums + j * S::W, acc[i][j]);
        for (int64_t f = 0; f < NV * S::W; ++f) {
            T& y = Y[i][(f0 + f) * g.y_cs];
            y = set ? sums[f] : y + sums[f];
        }
    }
}

// Filters [f0, f1) (of one group; fewer than a vector) of row r for NT trials,
// one at a time in scalar code, each summed in conv::accumulate's order.
template <typename T, int NT>
NC_INLINE void conv_rest(const conv::Geometry& g, const Pairs& r, const T* const* X,
                         const T* W, T* const* Y, int64_t f0, int64_t f1, bool set) {
    const int64_t c0 = (f0 / g.fpg) * g.cg;
    for (int64_t f = f0; f < f1; ++f)
        for (int i = 0; i < NT; ++i) {
            T acc = 0;
            for (int64_t k = r.begin; k < r.end; ++k) {
                const T* x = X[i] + (r.pos + r.dpos[k]) * g.x_ps + c0 * g.x_cs;
                const T* w = W + r.tap[k] * g.cg * g.filters + f;
                for (int64_t c = 0; c < g.cg; ++c) acc += w[c * g.filters] * x[c * g.x_cs];
            }
            T& y = Y[i][f * g.y_cs];
            y = set ? acc : y + acc;
        }
}

// Output position o of NT trials, all filters: per group, tiles of NV (then 2,
// when NV is 4) and 1 vectors of filters (with AVX-512, then a half vector),
// then the remaining filters together in scalar code.
template <typename T, int B, int NT, int NV>
NC_INLINE void conv_rows(const conv::Geometry& g, const T* const* X, const T* W, T* const* Y,
                         const Pairs& r, bool set) {
    constexpr int64_t L = Simd<T, B>::W;
    for (int64_t g0 = 0; g0 < g.filters; g0 += g.fpg) {
        const int64_t g1 = g0 + g.fpg;
        int64_t f = g0;
        for (; f + NV * L <= g1; f += NV * L) conv_tile<T, B, NT, NV>(g, r, X, W, Y, f, set);
        if constexpr (NV > 2)
            for (; f + 2 * L <= g1; f += 2 * L) conv_tile<T, B, NT, 2>(g, r, X, W, Y, f, set);
        for (; f + L <= g1; f += L) conv_tile<T, B, NT, 1>(g, r, X, W, Y, f, set);
        if constexpr (B == 64)  // a half vector: 8 filters are not left to scalar code
            for (; f + L / 2 <= g1; f += L / 2) conv_tile<T, 32, NT, 1>(g, r, X, W, Y, f, set);
        if (f < g1) conv_rest<T, NT>(g, r, X, W, Y, f, g1, set);
    }
}

// Tiles of 4 trials x NV vectors or 1 trial x 4 vectors: with 16 vector
// registers (SSE2, AVX2) NV = 2, 8 accumulators and the weight vectors; with
// AVX-512's 32, NV = 4 (16 accumulators: twice the multiply-adds per
// broadcast of X).  Each output element sums its terms in the same order
// whatever the vector width (lanes are filters), so results do not depend on it.
template <typename T, int B, int NV = 2>
NC_INLINE void conv_trials(const conv::Geometry& g, int nt, const T* const* X, const T* W,
                           T* const* Y, const Pairs& r, bool set) {
    if (nt == 4) {
        conv_rows<T, B, 4, NV>(g, X, W, Y, r, set);
    } else {
        for (int i = 0; i < nt; ++i) conv_rows<T, B, 1, 4>(g, X + i, W, Y + i, r, set);
    }
}

// The same code with AVX2 vectors (8 floats, 4 doubles).
template <typename T>
NC_TARGET_AVX2 void conv_trials_avx2(const conv::Geometry& g, int nt, const T* const* X,
                                     const T* W, T* const* Y, const Pairs& r, bool set) {
    conv_trials<T, 32>(g, nt, X, W, Y, r, set);
}

// And with AVX-512 vectors (16 floats, 8 doubles).
template <typename T>
NC_TARGET_AVX512 void conv_trials_avx512(const conv::Geometry& g, int nt, const T* const* X,
                                         const T* W, T* const* Y, const Pairs& r, bool set) {
    conv_trials<T, 64, 4>(g, nt, X, W, Y, r, set);
}

// Runs of 4 consecutive output positions whose pairs are those of the first
// shifted by 0, d, 2d, 3d input positions (same taps in the same order): the
// interior of a row of the output.  They share weight loads like 4 trials.
struct RowTile {
    int64_t row, rows, shift;
};

// Each output position's pairs: conv::row's, listed once per pattern.
struct PairLists {
    std::vector<int64_t> dpos, tap;  // the patterns' pairs, one list after another
    struct RowRef {
        int64_t pos, begin, end;
    };
    std::vector<RowRef> rows;  // per output position
    int64_t n_pairs = 0;       // over all output positions

    explicit PairLists(const conv::Geometry& g) {
        std::map<std::array<int64_t, 4>, std::pair<int64_t, int64_t>> patterns;
        rows.resize(g.out_positions());
        for (int64_t o = 0; o < g.out_positions(); ++o) {
            const conv::Row r = conv::row(g, o);
            n_pairs += r.size();
            auto [it, added] = patterns.try_emplace({r.n[0], r.n[1], r.n[2], r.tap});
            if (added) {
                it->second.first = static_cast<int64_t>(tap.size());
                r.for_each(g, [&](int64_t p, int64_t t) {
                    dpos.push_back(p - r.pos);
                    tap.push_back(t);
                });
                it->second.second = static_cast<int64_t>(tap.size());
            }
            rows[o] = {r.pos, it->second.first, it->second.second};
        }
    }
    Pairs at(int64_t o) const {
        const RowRef& r = rows[o];
        return {dpos.data(), tap.data(), r.begin, r.end, r.pos};
    }
};

inline std::vector<RowTile> row_tiles(const PairLists& pairs) {
    const auto& rows = pairs.rows;
    const int64_t n_rows = static_cast<int64_t>(rows.size());
    std::vector<RowTile> tiles;
    for (int64_t o = 0; o < n_rows;) {
        int64_t d = 0;
        bool four = o + 3 < n_rows && rows[o].end > rows[o].begin;
        for (int64_t i = 1; i < 4 && four; ++i) {
            if (i == 1) d = rows[o + 1].pos - rows[o].pos;
            // the same list (an empty one's begin can equal the next list's)
            four = rows[o + i].begin == rows[o].begin && rows[o + i].end == rows[o].end &&
                   rows[o + i].pos - rows[o].pos == i * d;
        }
        tiles.push_back({o, four ? 4 : 1, d});
        o += four ? 4 : 1;
    }
    return tiles;
}

template <typename T>
struct ConvIncInstr : Instr<T> {
    bool splits_by_trial() const override { return true; }
    // Each output position's pairs (conv::row, computed once: its divisions
    // cost more than a small row's sums) and the positions in runs (row_tiles)
    std::unique_ptr<PairLists> pairs;
    std::vector<RowTile> tiles;
    conv::Geometry geo;
    int64_t x = 0, y = 0, w = 0, n_rows = 0, work = 0;
    bool set = false;           // Y = the sum (a reset fused in), not Y += it
    int level = kSimdBaseline;  // simd_level() when built

    void run(const Buffers<T>& buf, const StepInfo&) override {
        const conv::Geometry& g = geo;
        const bool shared_w = w < buf.f.n_shared;
        auto tile = [&](int nt, const T* const* X, const T* W, T* const* Y, int64_t o) {
            const Pairs r = pairs->at(o);
            if (level == kSimdAvx512) conv_trials_avx512(g, nt, X, W, Y, r, set);
            else if (level == kSimdAvx2) conv_trials_avx2(g, nt, X, W, Y, r, set);
            else conv_trials<T, 16>(g, nt, X, W, Y, r, set);
        };
        const int ways = split_ways(work * buf.n_trials);
        if (shared_w && buf.n_trials >= 4) {
            // (output position, 4 trials) jobs: the trials share each weight load
            const int64_t n_t = (buf.n_trials + 3) / 4;
            parallel_for(n_rows * n_t, ways, [&](int64_t j) {
                const int t0 = static_cast<int>(j / n_rows) * 4;
                const int nt = std::min(4, buf.n_trials - t0);
                const int64_t o = j % n_rows;
                const T* X[4];
                T* Y[4];
                for (int i = 0; i < nt; ++i) {
                    X[i] = buf.f.at(x, t0 + i);
                    Y[i] = buf.f.at(y, t0 + i) + o * g.y_ps;
                }
                tile(nt, X, buf.f.at(w, t0), Y, o);
            });
            return;
        }
        // (run of output positions, trial) jobs: a run's positions share weight loads
        const int64_t n_tiles = static_cast<int64_t>(tiles.size());
        parallel_for(n_tiles * buf.n_trials, ways, [&](int64_t j) {
            const int t = static_cast<int>(j / n_tiles);
            const RowTile& r = tiles[j % n_tiles];
            const T* X[4];
            T* Y[4];
            for (int i = 0; i < r.rows; ++i) {
                X[i] = buf.f.at(x, t) + i * r.shift * g.x_ps;
                Y[i] = buf.f.at(y, t) + (r.row + i) * g.y_ps;
            }
            tile(static_cast<int>(r.rows), X, buf.f.at(w, t), Y, r.row);
        });
    }
};

template <typename T>
std::unique_ptr<Instr<T>> make_conv_inc(const InstrSpec& spec, const Buffers<T>& buf) {
    auto op = std::make_unique<ConvIncInstr<T>>();
    auto& g = op->geo;
    g = conv::geometry_from(spec);
    op->x = static_cast<int64_t>(spec.scalar("X"));
    op->y = static_cast<int64_t>(spec.scalar("Y"));
    op->w = static_cast<int64_t>(spec.scalar("W"));
    op->set = spec.scalar("set", 0.0) != 0.0;
    op->n_rows = g.out_positions();
    // every element the geometry can touch lies in one region (shared, or a
    // trial's state) of the float pool; strides may be negative
    const std::string k = spec.kind + ": ";
    auto check_span = [&](int64_t a, int64_t n1, int64_t s1, int64_t n2, int64_t s2) {
        const auto [lo, hi] = view_span(a, n1, s1, n2, s2);
        check_addresses({lo, hi}, buf.f, spec.kind);
        if ((lo < buf.f.n_shared) != (hi < buf.f.n_shared))
            throw std::invalid_argument(k + "an operand crosses the shared/state boundary");
    };
    check_span(op->x, g.in_positions(), g.x_ps, g.cg * (g.filters / g.fpg), g.x_cs);
    check_span(op->y, op->n_rows, g.y_ps, g.filters, g.y_cs);
    check_span(op->w, g.n_taps() * g.cg * g.filters, 1, 1, 0);
    op->pairs = std::make_unique<PairLists>(g);
    op->work = op->pairs->n_pairs * g.cg * g.filters;
    // AVX-512 where a group's filters fill at least two of its vectors (tiles
    // of 2-4 vectors); fewer would run in smaller tiles than AVX2's (measured
    // slower with 24 filters, 3 AVX2 vectors)
    op->level = simd_level();
    if (op->level == kSimdAvx512 && g.fpg * static_cast<int64_t>(sizeof(T)) < 128)
        op->level = kSimdAvx2;
    op->tiles = row_tiles(*op->pairs);
    return op;
}

NC_REGISTER_INSTR("conv_inc", make_conv_inc);

}  // namespace
}  // namespace nc
