// ConvInc / ConvTransposeInc: the gather of csrc/kernels/conv.h, per trial and
// output position; the filters of one group accumulate together in vector
// registers (W's filter axis is contiguous; AVX-512, AVX2 or SSE2 vectors, as
// the CPU has them), and tiles of 4 trials, or of 4 output positions whose
// pairs are shifts of each other, share weight loads.
#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "../kernels/conv.h"
#include "parallel.h"
#include "program.h"
#include "simd.h"

namespace nc {
namespace {

// Filters [f0, f0 + NV * lanes) of output position o for NT trials (X[i], Y[i]:
// trial i's operands; the trials share W, so each weight vector loaded serves
// all NT), in NT * NV vector registers, added to Y (or, with `set`, written to
// it).  Each output element sums its terms in conv::accumulate's order (pairs
// in table order, then channels); this file opts into FMA, as the dense
// products do.
template <typename T, int B, int NT, int NV>
NC_INLINE void conv_tile(const conv::Geometry& g, const T* const* X, const T* W,
                         T* const* Y, int64_t o, int64_t f0, bool set) {
    using S = Simd<T, B>;
    using V = typename S::V;
    V acc[NT][NV];
    for (int i = 0; i < NT; ++i)
        for (int j = 0; j < NV; ++j) acc[i][j] = S::splat(T(0));
    const int64_t c0 = (f0 / g.fpg) * g.cg;
    for (int64_t k = g.indptr[o]; k < g.indptr[o + 1]; ++k) {
        const int64_t xk = g.pos[k] * g.x_ps + c0 * g.x_cs;
        const T* w = W + g.tap[k] * g.cg * g.filters + f0;
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

// Output position o of NT trials, all filters: per group, tiles of NV (then 2,
// when NV is 4) and 1 vectors of filters (with AVX-512, then a half vector),
// then the remaining filters one by one.
template <typename T, int B, int NT, int NV>
NC_INLINE void conv_rows(const conv::Geometry& g, const T* const* X, const T* W, T* const* Y,
                         int64_t o, bool set) {
    constexpr int64_t L = Simd<T, B>::W;
    for (int64_t g0 = 0; g0 < g.filters; g0 += g.fpg) {
        const int64_t g1 = g0 + g.fpg;
        int64_t f = g0;
        for (; f + NV * L <= g1; f += NV * L) conv_tile<T, B, NT, NV>(g, X, W, Y, o, f, set);
        if constexpr (NV > 2)
            for (; f + 2 * L <= g1; f += 2 * L) conv_tile<T, B, NT, 2>(g, X, W, Y, o, f, set);
        for (; f + L <= g1; f += L) conv_tile<T, B, NT, 1>(g, X, W, Y, o, f, set);
        if constexpr (B == 64)  // a half vector: 8 filters are not left to scalar code
            for (; f + L / 2 <= g1; f += L / 2) conv_tile<T, 32, NT, 1>(g, X, W, Y, o, f, set);
        for (; f < g1; ++f)
            for (int i = 0; i < NT; ++i) {
                T acc = 0;
                conv::accumulate(g, X[i], W, o, f, f + 1, &acc);
                T& y = Y[i][f * g.y_cs];
                y = set ? acc : y + acc;
            }
    }
}

// Tiles of 4 trials x NV vectors or 1 trial x 4 vectors: with 16 vector
// registers (SSE2, AVX2) NV = 2, 8 accumulators and the weight vectors; with
// AVX-512's 32, NV = 4 (16 accumulators: twice the multiply-adds per
// broadcast of X).  Each output element sums its terms in the same order
// whatever the vector width (lanes are filters), so results do not depend on it.
template <typename T, int B, int NV = 2>
NC_INLINE void conv_trials(const conv::Geometry& g, int nt, const T* const* X, const T* W,
                           T* const* Y, int64_t o, bool set) {
    if (nt == 4) {
        conv_rows<T, B, 4, NV>(g, X, W, Y, o, set);
    } else {
        for (int i = 0; i < nt; ++i) conv_rows<T, B, 1, 4>(g, X + i, W, Y + i, o, set);
    }
}

// The same code with AVX2 vectors (8 floats, 4 doubles).
template <typename T>
NC_TARGET_AVX2 void conv_trials_avx2(const conv::Geometry& g, int nt, const T* const* X,
                                     const T* W, T* const* Y, int64_t o, bool set) {
    conv_trials<T, 32>(g, nt, X, W, Y, o, set);
}

// And with AVX-512 vectors (16 floats, 8 doubles).
template <typename T>
NC_TARGET_AVX512 void conv_trials_avx512(const conv::Geometry& g, int nt, const T* const* X,
                                         const T* W, T* const* Y, int64_t o, bool set) {
    conv_trials<T, 64, 4>(g, nt, X, W, Y, o, set);
}

// Runs of 4 consecutive output positions whose pairs are those of the first
// shifted by 0, d, 2d, 3d input positions (same taps in the same order): the
// interior of a row of the output.  They share weight loads like 4 trials.
struct RowTile {
    int64_t row, rows, shift;
};

inline std::vector<RowTile> row_tiles(const std::vector<int64_t>& indptr,
                                      const std::vector<int64_t>& pos,
                                      const std::vector<int64_t>& tap) {
    const int64_t n_rows = static_cast<int64_t>(indptr.size()) - 1;
    auto shifted = [&](int64_t o, int64_t i, int64_t d) {  // row o + i = row o moved by i d?
        const int64_t n = indptr[o + 1] - indptr[o];
        if (indptr[o + i + 1] - indptr[o + i] != n) return false;
        for (int64_t k = 0; k < n; ++k) {
            const int64_t a = indptr[o] + k, b = indptr[o + i] + k;
            if (tap[a] != tap[b] || pos[b] - pos[a] != i * d) return false;
        }
        return true;
    };
    std::vector<RowTile> tiles;
    for (int64_t o = 0; o < n_rows;) {
        int64_t d = 0;
        bool four = o + 3 < n_rows && indptr[o + 1] > indptr[o] && indptr[o + 2] > indptr[o + 1];
        if (four) {
            d = pos[indptr[o + 1]] - pos[indptr[o]];
            for (int64_t i = 1; i < 4 && four; ++i) four = shifted(o, i, d);
        }
        tiles.push_back({o, four ? 4 : 1, d});
        o += four ? 4 : 1;
    }
    return tiles;
}

template <typename T>
struct ConvIncInstr : Instr<T> {
    bool splits_by_trial() const override { return true; }
    std::vector<int64_t> indptr, pos, tap;
    std::vector<RowTile> tiles;  // the output positions in runs (see row_tiles)
    conv::Geometry geo;
    int64_t x = 0, y = 0, w = 0, n_rows = 0, groups = 1, work = 0;
    bool set = false;           // Y = the sum (a reset fused in), not Y += it
    int level = kSimdBaseline;  // simd_level() when built

    void run(const Buffers<T>& buf, const StepInfo&) override {
        conv::Geometry g = geo;
        g.indptr = indptr.data();
        g.pos = pos.data();
        g.tap = tap.data();
        const bool shared_w = w < buf.f.n_shared;
        auto tile = [&](int nt, const T* const* X, const T* W, T* const* Y, int64_t o) {
            if (level == kSimdAvx512) conv_trials_avx512(g, nt, X, W, Y, o, set);
            else if (level == kSimdAvx2) conv_trials_avx2(g, nt, X, W, Y, o, set);
            else conv_trials<T, 16>(g, nt, X, W, Y, o, set);
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

inline int64_t int_scalar(const InstrSpec& spec, const char* name) {
    return static_cast<int64_t>(spec.scalar(name));
}

template <typename T>
std::unique_ptr<Instr<T>> make_conv_inc(const InstrSpec& spec, const Buffers<T>& buf) {
    auto op = std::make_unique<ConvIncInstr<T>>();
    op->indptr = spec.int_array("indptr");
    op->pos = spec.int_array("pos");
    op->tap = spec.int_array("tap");
    auto& g = op->geo;
    op->x = int_scalar(spec, "X");
    op->y = int_scalar(spec, "Y");
    op->w = int_scalar(spec, "W");
    op->set = spec.scalar("set", 0.0) != 0.0;
    g.x_ps = int_scalar(spec, "X_ps");
    g.x_cs = int_scalar(spec, "X_cs");
    g.y_ps = int_scalar(spec, "Y_ps");
    g.y_cs = int_scalar(spec, "Y_cs");
    g.filters = int_scalar(spec, "filters");
    op->groups = int_scalar(spec, "groups");
    const int64_t in_pos = int_scalar(spec, "in_positions");
    const int64_t in_ch = int_scalar(spec, "in_channels");
    const int64_t taps = int_scalar(spec, "taps");
    const std::string k = spec.kind + ": ";
    if (op->groups < 1 || g.filters < 1 || in_ch < 1 || taps < 1 || in_pos < 1 ||
        in_ch % op->groups != 0 || g.filters % op->groups != 0)
        throw std::invalid_argument(k + "bad channels, filters, groups or taps");
    g.cg = in_ch / op->groups;
    g.fpg = g.filters / op->groups;
    // the CSR tables: monotonic rows, positions and taps in range
    if (op->indptr.size() < 2 || op->indptr.front() != 0 ||
        op->indptr.back() != static_cast<int64_t>(op->pos.size()) ||
        op->pos.size() != op->tap.size())
        throw std::invalid_argument(k + "malformed tables");
    for (size_t r = 0; r + 1 < op->indptr.size(); ++r)
        if (op->indptr[r] > op->indptr[r + 1]) throw std::invalid_argument(k + "indptr not monotonic");
    for (size_t j = 0; j < op->pos.size(); ++j)
        if (op->pos[j] < 0 || op->pos[j] >= in_pos || op->tap[j] < 0 || op->tap[j] >= taps)
            throw std::invalid_argument(k + "position or tap out of range");
    op->n_rows = static_cast<int64_t>(op->indptr.size()) - 1;
    // every element the tables can touch lies in one region (shared, or a trial's
    // state) of the float pool; strides may be negative
    auto check_span = [&](int64_t a, int64_t n1, int64_t s1, int64_t n2, int64_t s2) {
        const auto [lo, hi] = view_span(a, n1, s1, n2, s2);
        check_addresses({lo, hi}, buf.f, spec.kind);
        if ((lo < buf.f.n_shared) != (hi < buf.f.n_shared))
            throw std::invalid_argument(k + "an operand crosses the shared/state boundary");
    };
    check_span(op->x, in_pos, g.x_ps, in_ch, g.x_cs);
    check_span(op->y, op->n_rows, g.y_ps, g.filters, g.y_cs);
    check_span(op->w, taps * g.cg * g.filters, 1, 1, 0);
    op->work = static_cast<int64_t>(op->pos.size()) * g.cg * g.filters;
    // AVX-512 where a group's filters fill at least two of its vectors (tiles
    // of 2-4 vectors); fewer would run in smaller tiles than AVX2's (measured
    // slower with 24 filters, 3 AVX2 vectors)
    op->level = simd_level();
    if (op->level == kSimdAvx512 && g.fpg * static_cast<int64_t>(sizeof(T)) < 128)
        op->level = kSimdAvx2;
    op->tiles = row_tiles(op->indptr, op->pos, op->tap);
    return op;
}

NC_REGISTER_INSTR("conv_inc", make_conv_inc);

}  // namespace
}  // namespace nc
