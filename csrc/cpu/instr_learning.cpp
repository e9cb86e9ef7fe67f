// Learning rules (SimPES, SimBCM, SimOja, SimVoja): one instruction per rule
// over all merged operators of a stage.
//
// Every operator is a block computing a (rows x cols) weight change
// delta[r, c] from a presynaptic vector pre[c] and per-row quantities.  All
// operands are strided views: a vector is (address, stride), a matrix is
// (address, row stride, col stride), one entry per block.  Work is split into
// (trial, row) jobs; rows of one delta never overlap, and the planner puts
// operators that write the same signal into different instructions.
#include <algorithm>
#include <type_traits>

#include "../kernels/learning.h"
#include "parallel.h"
#include "program.h"
#include "simd.h"

namespace nc {
namespace {

// Strided vectors, one per block: element k of block b is at addr[b] + k * s[b].
struct VecViews {
    std::vector<int64_t> addr, s;
};

// Strided matrices, one per block: element (r, c) is at addr[b] + r * rs[b] + c * cs[b].
struct MatViews {
    std::vector<int64_t> addr, rs, cs;
};

std::vector<int64_t> block_array(const InstrSpec& spec, const std::string& name, size_t nb) {
    const auto& v = spec.int_array(name);
    if (v.size() != nb)
        throw std::invalid_argument(spec.kind + ": array '" + name + "' has length " +
                                    std::to_string(v.size()) + ", expected " +
                                    std::to_string(nb));
    return v;
}

// Vector views `name` / `name_s` of lengths len[b].
template <typename E>
VecViews load_vec(const InstrSpec& spec, const std::string& name,
                  const std::vector<int64_t>& len, const Pool<E>& pool) {
    VecViews v{block_array(spec, name, len.size()), block_array(spec, name + "_s", len.size())};
    for (size_t b = 0; b < len.size(); ++b)
        if (len[b] > 0) check_corners({v.addr[b], v.addr[b] + (len[b] - 1) * v.s[b]}, pool,
                                      spec.kind + " " + name);
    return v;
}

// Matrix views `name` / `name_rs` / `name_cs` of shapes (rows[b], cols[b]).
template <typename E>
MatViews load_mat(const InstrSpec& spec, const std::string& name,
                  const std::vector<int64_t>& rows, const std::vector<int64_t>& cols,
                  const Pool<E>& pool) {
    const size_t nb = rows.size();
    MatViews m{block_array(spec, name, nb), block_array(spec, name + "_rs", nb),
               block_array(spec, name + "_cs", nb)};
    for (size_t b = 0; b < nb; ++b) {
        if (rows[b] == 0 || cols[b] == 0) continue;
        const int64_t a = m.addr[b], dr = (rows[b] - 1) * m.rs[b], dc = (cols[b] - 1) * m.cs[b];
        check_corners({a, a + dr, a + dc, a + dr + dc}, pool, spec.kind + " " + name);
    }
    return m;
}

// What every rule has: the blocks' shapes, delta (rows x cols), pre (cols) and
// a learning rate per block.
template <typename T>
struct OuterBlocks {
    std::vector<int64_t> rows, cols, row_start;  // row_start: prefix sums of rows
    MatViews delta;
    VecViews pre;
    std::vector<double> learning_rate;
    int64_t total_rows = 0, work = 0;
    // delta[r, c] += f(...) instead of = (nengo_cuda/deferral.py: "delta" is
    // then the weights, the change computed where Nengo's Copy adds it)
    bool inc = false;

    void load(const InstrSpec& spec, const Buffers<T>& buf) {
        rows = spec.int_array("rows");
        cols = block_array(spec, "cols", rows.size());
        for (size_t b = 0; b < rows.size(); ++b) {
            if (rows[b] < 0 || cols[b] < 0)
                throw std::invalid_argument(spec.kind + ": negative block shape");
            row_start.push_back(total_rows);
            total_rows += rows[b];
            work += rows[b] * cols[b];
        }
        delta = load_mat(spec, "delta", rows, cols, buf.f);
        pre = load_vec(spec, "pre", cols, buf.f);
        learning_rate = per_block(spec, "learning_rate");
        inc = spec.scalar("inc", 0.0) != 0.0;
    }

    std::vector<double> per_block(const InstrSpec& spec, const std::string& name) const {
        const auto& v = spec.float_array(name);
        if (v.size() != rows.size())
            throw std::invalid_argument(spec.kind + ": array '" + name + "' has wrong length");
        return v;
    }

    // Block holding global row g (blocks with no rows are never found).
    int64_t block_of(int64_t g) const {
        return (std::upper_bound(row_start.begin(), row_start.end(), g) - row_start.begin()) - 1;
    }

    // Element r of vector view v in block b, trial t.
    T element(const Buffers<T>& buf, const VecViews& v, int64_t b, int64_t r, int t) const {
        return buf.f.at(v.addr[b], t)[r * v.s[b]];
    }

    // delta[r, c] = f(pre[c], M[r, c]) (or +=, `inc`) for row r of block b.  M
    // is an optional matrix operand with the delta's shape, which with `inc` may
    // be delta itself; rules without one pass nullptr and f ignores its second
    // argument.  With `inc` the change is rounded before it is added (no FMA
    // contraction in this file), as Nengo stores delta and then adds it.
    template <typename F>
    void apply_row(const Buffers<T>& buf, int64_t b, int64_t r, int t, const MatViews* M,
                   F f) const {
        T* D = buf.f.at(delta.addr[b], t) + r * delta.rs[b];
        const T* P = buf.f.at(pre.addr[b], t);
        const T* X = M ? buf.f.at(M->addr[b], t) + r * M->rs[b] : P;
        const int64_t n = cols[b], ds = delta.cs[b], ps = pre.s[b], xs = M ? M->cs[b] : ps;
        auto loop = [&](auto d_s, auto p_s, auto x_s) NC_LAMBDA {
            if (inc)
                for (int64_t c = 0; c < n; ++c) D[c * d_s] += f(P[c * p_s], X[c * x_s]);
            else
                for (int64_t c = 0; c < n; ++c) D[c * d_s] = f(P[c * p_s], X[c * x_s]);
        };
        using One = std::integral_constant<int64_t, 1>;
        if (ds == 1 && ps == 1 && xs == 1)  // contiguous: lets the compiler vectorise
            with_simd([&]() NC_LAMBDA { loop(One{}, One{}, One{}); });
        else
            loop(ds, ps, xs);
    }
};

// --- the rules: load their own operands, compute one row --------------------

template <typename T>
struct PesRule {
    VecViews error;
    void load(const InstrSpec& spec, const Buffers<T>& buf, const OuterBlocks<T>& bl) {
        error = load_vec(spec, "error", bl.rows, buf.f);
    }
    void row(const OuterBlocks<T>& bl, const Buffers<T>& buf, double dt, int64_t b,
             int64_t r, int t) const {
        const T alpha = static_cast<T>(learning::pes_alpha(bl.learning_rate[b], dt, bl.cols[b]));
        const T f = learning::pes_row<T>(alpha, bl.element(buf, error, b, r, t));
        bl.apply_row(buf, b, r, t, nullptr,
                     [f](T pre, T) NC_LAMBDA { return learning::outer_delta<T>(f, pre); });
    }
};

template <typename T>
struct BcmRule {
    VecViews post, theta;
    void load(const InstrSpec& spec, const Buffers<T>& buf, const OuterBlocks<T>& bl) {
        post = load_vec(spec, "post", bl.rows, buf.f);
        theta = load_vec(spec, "theta", bl.rows, buf.f);
    }
    void row(const OuterBlocks<T>& bl, const Buffers<T>& buf, double dt, int64_t b,
             int64_t r, int t) const {
        const T alpha = static_cast<T>(bl.learning_rate[b] * dt);
        const T f = learning::bcm_row<T>(alpha, bl.element(buf, post, b, r, t),
                                         bl.element(buf, theta, b, r, t));
        bl.apply_row(buf, b, r, t, nullptr,
                     [f](T pre, T) NC_LAMBDA { return learning::outer_delta<T>(f, pre); });
    }
};

template <typename T>
struct OjaRule {
    VecViews post;
    MatViews weights;
    std::vector<double> beta;
    void load(const InstrSpec& spec, const Buffers<T>& buf, const OuterBlocks<T>& bl) {
        post = load_vec(spec, "post", bl.rows, buf.f);
        weights = load_mat(spec, "weights", bl.rows, bl.cols, buf.f);
        beta = bl.per_block(spec, "beta");
    }
    void row(const OuterBlocks<T>& bl, const Buffers<T>& buf, double dt, int64_t b,
             int64_t r, int t) const {
        const T alpha = static_cast<T>(bl.learning_rate[b] * dt);
        const T neg_beta = static_cast<T>(-beta[b]);
        const auto f = learning::oja_row<T>(alpha, bl.element(buf, post, b, r, t));
        bl.apply_row(buf, b, r, t, &weights, [neg_beta, f](T pre, T w) NC_LAMBDA {
            return learning::oja_delta<T>(neg_beta, w, f, pre);
        });
    }
};

template <typename T>
struct VojaRule {
    VecViews post;
    MatViews encoders;
    std::vector<int64_t> signal;  // address of each block's scalar learning signal
    std::vector<T> scale;         // one per row of all blocks (indexed by global row)
    void load(const InstrSpec& spec, const Buffers<T>& buf, const OuterBlocks<T>& bl) {
        post = load_vec(spec, "post", bl.rows, buf.f);
        encoders = load_mat(spec, "encoders", bl.rows, bl.cols, buf.f);
        signal = block_array(spec, "signal", bl.rows.size());
        check_addresses(signal, buf.f, spec.kind);
        const auto& s = spec.float_array("scale");
        if (static_cast<int64_t>(s.size()) != bl.total_rows)
            throw std::invalid_argument(spec.kind + ": array 'scale' has wrong length");
        scale = to_scalar_vector<T>(s);
    }
    void row(const OuterBlocks<T>& bl, const Buffers<T>& buf, double dt, int64_t b,
             int64_t r, int t) const {
        const T alpha = static_cast<T>(bl.learning_rate[b] * dt);
        const T gain = learning::voja_gain<T>(alpha, *buf.f.at(signal[b], t));
        const T s = scale[bl.row_start[b] + r];
        const T p = bl.element(buf, post, b, r, t);
        bl.apply_row(buf, b, r, t, &encoders, [gain, s, p](T pre, T enc) NC_LAMBDA {
            return learning::voja_delta<T>(gain, s, p, pre, enc);
        });
    }
};

template <typename T, typename Rule>
struct LearningInstr : Instr<T> {
    bool splits_by_trial() const override { return true; }
    OuterBlocks<T> blocks;
    Rule rule;
    void run(const Buffers<T>& buf, const StepInfo& info) override {
        const int64_t n_rows = blocks.total_rows;
        const int64_t jobs = n_rows * buf.n_trials;
        parallel_for(jobs, split_ways(blocks.work * buf.n_trials), [&](int64_t j) {
            const int t = static_cast<int>(j / n_rows);
            const int64_t g = j % n_rows, b = blocks.block_of(g);
            rule.row(blocks, buf, info.dt, b, g - blocks.row_start[b], t);
        });
    }
};

template <typename T, template <typename> class Rule>
std::unique_ptr<Instr<T>> make_learning(const InstrSpec& spec, const Buffers<T>& buf) {
    auto op = std::make_unique<LearningInstr<T, Rule<T>>>();
    op->blocks.load(spec, buf);
    op->rule.load(spec, buf, op->blocks);
    return op;
}

// Registers kind KIND for Rule: a factory template make_Rule<T> per rule.
#define NC_REGISTER_LEARNING(KIND, RULE)                                                  \
    template <typename T>                                                                 \
    std::unique_ptr<Instr<T>> make_##RULE(const InstrSpec& spec, const Buffers<T>& buf) { \
        return make_learning<T, RULE>(spec, buf);                                         \
    }                                                                                     \
    NC_REGISTER_INSTR(KIND, make_##RULE)

NC_REGISTER_LEARNING("learning_pes", PesRule);
NC_REGISTER_LEARNING("learning_bcm", BcmRule);
NC_REGISTER_LEARNING("learning_oja", OjaRule);
NC_REGISTER_LEARNING("learning_voja", VojaRule);

}  // namespace
}  // namespace nc
