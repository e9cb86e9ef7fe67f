// SimProcess kernels: linear filters (nengo.LinearFilter and its subclasses
// Lowpass and Alpha) and table-driven processes.
//
// - lti_elementwise: every stateless (NoX) and one-state (OneX, OneXScalar)
//   filtered element of a stage, with per-element coefficients.
// - lti_state_space: blocks of elements sharing one (A, B, C, D) system with
//   n >= 1 states (NoD, General); the block's state X is n x m, row-major.
// - triangle: Triangle synapses (FIR filters of n taps kept in a ring X);
//   per operator, the elements, then the ring position Xi moves on.
// - process_table: outputs read from a table that Python fills (set_table):
//   periodic rows indexed by time (WhiteSignal), or one row per step of the
//   current run (WhiteNoise; PresentInput and Piecewise, one block for all
//   trials), laid out as processes::table_layout says.
//
// Trials run in parallel; within a trial elements run in order, so merged
// operators may increment the same output.
#include <algorithm>
#include <limits>

#include "../kernels/linear_filter.h"
#include "../kernels/process_table.h"
#include "../kernels/triangle.h"
#include "parallel.h"
#include "program.h"
#include "segments.h"
#include "simd.h"

namespace nc {
namespace {

using filters::write_output;

template <typename T>
struct LtiElementwise : Instr<T> {
    bool splits_by_trial() const override { return true; }
    std::vector<int64_t> u, y, x, form, inc;  // x: state address (-1 for NoX)
    std::vector<T> a, b;                      // OneX (b is d for NoX)
    std::vector<double> a_wide, b_wide;       // OneXScalar
    // runs of elements with one form and mode and consecutive U, Y (and X)
    // addresses; empty: element by element
    std::vector<Segment> segments;

    void element(const Buffers<T>& buf, int64_t k, int t) const {
        const T uk = *buf.f.at(u[k], t);
        T yk;
        if (form[k] == filters::kNoX)
            yk = filters::no_state(b[k], uk);
        else if (form[k] == filters::kOneX)
            yk = filters::one_state(*buf.f.at(x[k], t), a[k], b[k], uk);
        else
            yk = filters::one_state_scalar(*buf.f.at(x[k], t), a_wide[k], b_wide[k], uk);
        write_output(*buf.f.at(y[k], t), yk, inc[k] != 0);
    }

    // The segment's elements of trial t, through plain pointers (vectorisable;
    // inlined into with_simd's copies).  Uniform (mark_uniform): a and b are
    // one value over the segment (the same filter: a layer's synapse), read
    // once instead of per element (a third of the memory traffic).
    template <bool Uniform>
    NC_INLINE void segment(const Buffers<T>& buf, const Segment& seg, int t) const {
        const int64_t k0 = seg.k0, n = seg.len;
        const T* __restrict U = buf.f.at(u[k0], t);
        T* __restrict Y = buf.f.at(y[k0], t);
        const T *A = a.data() + k0, *Bc = b.data() + k0;
        auto at = [](const T* c, int64_t i) NC_LAMBDA { return c[Uniform ? 0 : i]; };
        const bool add = inc[k0] != 0;
        if (form[k0] == filters::kNoX) {
            if (add)
                for (int64_t i = 0; i < n; ++i) Y[i] += filters::no_state(at(Bc, i), U[i]);
            else
                for (int64_t i = 0; i < n; ++i) Y[i] = filters::no_state(at(Bc, i), U[i]);
        } else if (form[k0] == filters::kOneX) {
            T* __restrict X = buf.f.at(x[k0], t);
            if (add)
                for (int64_t i = 0; i < n; ++i)
                    Y[i] += filters::one_state(X[i], at(A, i), at(Bc, i), U[i]);
            else
                for (int64_t i = 0; i < n; ++i)
                    Y[i] = filters::one_state(X[i], at(A, i), at(Bc, i), U[i]);
        } else {
            for (int64_t i = 0; i < n; ++i) element(buf, k0 + i, t);
        }
    }

    void run(const Buffers<T>& buf, const StepInfo&) override {
        const int64_t n = static_cast<int64_t>(u.size());
        parallel_for(buf.n_trials, split_ways(n * buf.n_trials), [&](int64_t t) {
            // segments and elements in order: merged operators may increment one output
            if (!segments.empty()) {
                with_simd([&]() NC_LAMBDA {
                    for (const auto& seg : segments) {
                        if (seg.uniform)
                            segment<true>(buf, seg, static_cast<int>(t));
                        else
                            segment<false>(buf, seg, static_cast<int>(t));
                    }
                });
            } else {
                for (int64_t k = 0; k < n; ++k) element(buf, k, static_cast<int>(t));
            }
        });
    }
};

template <typename T>
std::unique_ptr<Instr<T>> make_lti_elementwise(const InstrSpec& spec, const Buffers<T>& buf) {
    check_same_length(spec, {"U", "Y", "X", "form", "inc", "a", "b"});
    auto op = std::make_unique<LtiElementwise<T>>();
    op->u = spec.int_array("U");
    op->y = spec.int_array("Y");
    op->x = spec.int_array("X");
    op->form = spec.int_array("form");
    op->inc = spec.int_array("inc");
    op->a_wide = spec.float_array("a");
    op->b_wide = spec.float_array("b");
    op->a = to_scalar_vector<T>(op->a_wide);
    op->b = to_scalar_vector<T>(op->b_wide);
    check_addresses(op->u, buf.f, spec.kind);
    check_addresses(op->y, buf.f, spec.kind);
    std::vector<int64_t> states;
    for (size_t k = 0; k < op->form.size(); ++k) {
        const int64_t f = op->form[k];
        if (f != filters::kNoX && f != filters::kOneX && f != filters::kOneXScalar)
            throw std::invalid_argument(spec.kind + ": bad form " + std::to_string(f));
        if (f != filters::kNoX) states.push_back(op->x[k]);
    }
    check_addresses(states, buf.f, spec.kind);
    // a segment has one form and mode, and its states are consecutive too
    const auto& f = op->form;
    const auto& m = op->inc;
    const auto& x = op->x;
    const int64_t n_shared = buf.f.n_shared;
    op->segments = contiguous_segments(
        {&op->u, &op->y}, n_shared, std::numeric_limits<int64_t>::max(), 8, [&](int64_t k) {
            return f[k] != f[k - 1] || m[k] != m[k - 1] ||
                   (f[k] != filters::kNoX && !continues(x[k - 1], x[k], n_shared));
        });
    mark_uniform(op->segments, std::vector<const std::vector<T>*>{&op->a, &op->b});
    return op;
}

template <typename T>
struct LtiStateSpace : Instr<T> {
    bool splits_by_trial() const override { return true; }
    // per block: states, elements, state address, General (else NoD), inc mode,
    // first element, first entry of A, first entry of B and C
    std::vector<int64_t> n, m, x, general, inc, elem0, a0, bc0;
    std::vector<int64_t> u, y;      // per element
    std::vector<double> A, B, C, D;  // A: n*n per block, B and C: n per block, D: 1
    std::vector<std::vector<double>> scratch;  // per trial, max n doubles
    int64_t work = 0;

    void run(const Buffers<T>& buf, const StepInfo&) override {
        const int64_t nb = static_cast<int64_t>(n.size());
        parallel_for(buf.n_trials, split_ways(work * buf.n_trials), [&](int64_t t) {
            double* tmp = scratch[buf.trial0 + t].data();
            for (int64_t j = 0; j < nb; ++j) {
                T* xj = buf.f.at(x[j], t);
                for (int64_t k = 0; k < m[j]; ++k) {
                    const int64_t e = elem0[j] + k;
                    const double yk = filters::state_space(
                        n[j], &A[a0[j]], &B[bc0[j]], &C[bc0[j]], D[j], general[j] != 0, xj + k,
                        m[j], *buf.f.at(u[e], t), tmp);
                    write_output(*buf.f.at(y[e], t), yk, inc[j] != 0);
                }
            }
        });
    }
};

template <typename T>
std::unique_ptr<Instr<T>> make_lti_state_space(const InstrSpec& spec, const Buffers<T>& buf) {
    check_same_length(spec, {"n", "m", "X", "general", "inc", "D"});
    check_same_length(spec, {"U", "Y"});
    auto op = std::make_unique<LtiStateSpace<T>>();
    op->n = spec.int_array("n");
    op->m = spec.int_array("m");
    op->x = spec.int_array("X");
    op->general = spec.int_array("general");
    op->inc = spec.int_array("inc");
    op->u = spec.int_array("U");
    op->y = spec.int_array("Y");
    op->A = spec.float_array("A");
    op->B = spec.float_array("B");
    op->C = spec.float_array("C");
    op->D = spec.float_array("D");
    int64_t elems = 0, a_size = 0, bc_size = 0, max_n = 1;
    for (size_t j = 0; j < op->n.size(); ++j) {
        const int64_t nj = op->n[j], mj = op->m[j];
        if (nj < 1 || mj < 0) throw std::invalid_argument(spec.kind + ": bad block shape");
        op->elem0.push_back(elems);
        op->a0.push_back(a_size);
        op->bc0.push_back(bc_size);
        elems += mj;
        a_size += nj * nj;
        bc_size += nj;
        max_n = std::max(max_n, nj);
        op->work += mj * nj * (nj + 1);
        // The block's state is one contiguous n x m array of per-trial memory.
        if (mj > 0) {
            check_addresses({op->x[j], op->x[j] + nj * mj - 1}, buf.f, spec.kind);
            if (op->x[j] < buf.f.n_shared)
                throw std::invalid_argument(spec.kind + ": state X must not be shared");
        }
    }
    if (elems != static_cast<int64_t>(op->u.size()) ||
        a_size != static_cast<int64_t>(op->A.size()) ||
        bc_size != static_cast<int64_t>(op->B.size()) ||
        bc_size != static_cast<int64_t>(op->C.size()))
        throw std::invalid_argument(spec.kind + ": arrays do not match the block shapes");
    check_addresses(op->u, buf.f, spec.kind);
    check_addresses(op->y, buf.f, spec.kind);
    op->scratch.assign(buf.n_trials, std::vector<double>(max_n));
    return op;
}

template <typename T>
struct TriangleSynapses : Instr<T> {
    bool splits_by_trial() const override { return true; }
    // per operator: taps, elements, ring X (n x m, row-major), its position
    // Xi, first element, inc mode, coefficients in double (wide) or not
    std::vector<int64_t> n, m, x, xi, elem0, inc, wide;
    std::vector<double> n0, ndiff;
    std::vector<int64_t> u, y, state;  // per element: input, output, Y
    int64_t work = 0;

    void run(const Buffers<T>& buf, const StepInfo&) override {
        const int64_t nops = static_cast<int64_t>(n.size());
        parallel_for(buf.n_trials, split_ways(work * buf.n_trials), [&](int64_t t) {
            for (int64_t j = 0; j < nops; ++j) {
                T& pos = *buf.f.at(xi[j], t);
                const T next = triangle::next_position(pos, n[j]);
                const int64_t row = triangle::row_of(next, n[j]);
                T* ring = buf.f.at(x[j], t);
                for (int64_t k = 0; k < m[j]; ++k) {
                    const int64_t e = elem0[j] + k;
                    const T yk = triangle::step(*buf.f.at(state[e], t), ring + k, n[j], m[j],
                                                n0[j], ndiff[j], wide[j] != 0,
                                                *buf.f.at(u[e], t), row);
                    write_output(*buf.f.at(y[e], t), yk, inc[j] != 0);
                }
                pos = next;
            }
        });
    }
};

template <typename T>
std::unique_ptr<Instr<T>> make_triangle(const InstrSpec& spec, const Buffers<T>& buf) {
    check_same_length(spec, {"n", "m", "X", "Xi", "inc", "wide", "n0", "ndiff"});
    check_same_length(spec, {"U", "Y", "state"});
    auto op = std::make_unique<TriangleSynapses<T>>();
    op->n = spec.int_array("n");
    op->m = spec.int_array("m");
    op->x = spec.int_array("X");
    op->xi = spec.int_array("Xi");
    op->inc = spec.int_array("inc");
    op->wide = spec.int_array("wide");
    op->n0 = spec.float_array("n0");
    op->ndiff = spec.float_array("ndiff");
    op->u = spec.int_array("U");
    op->y = spec.int_array("Y");
    op->state = spec.int_array("state");
    int64_t elems = 0;
    for (size_t j = 0; j < op->n.size(); ++j) {
        const int64_t nj = op->n[j], mj = op->m[j];
        if (nj < 1 || mj < 0) throw std::invalid_argument(spec.kind + ": bad ring shape");
        op->elem0.push_back(elems);
        elems += mj;
        op->work += mj * (nj + 2);
        // the ring and its position are per-trial memory; the ring one
        // contiguous n x m array
        check_addresses({op->xi[j]}, buf.f, spec.kind);
        if (mj > 0) check_addresses({op->x[j], op->x[j] + nj * mj - 1}, buf.f, spec.kind);
        if (op->xi[j] < buf.f.n_shared || (mj > 0 && op->x[j] < buf.f.n_shared))
            throw std::invalid_argument(spec.kind + ": the ring X and Xi must not be shared");
    }
    if (elems != static_cast<int64_t>(op->u.size()))
        throw std::invalid_argument(spec.kind + ": arrays do not match the operators' sizes");
    check_addresses(op->u, buf.f, spec.kind);
    check_addresses(op->y, buf.f, spec.kind);
    check_addresses(op->state, buf.f, spec.kind);
    for (int64_t a : op->state)
        if (a < buf.f.n_shared)
            throw std::invalid_argument(spec.kind + ": the state Y must not be shared");
    return op;
}

template <typename T>
struct ProcessTable : Instr<T> {
    bool splits_by_trial() const override { return true; }
    // per operator: elements, table period in rows (0: one row per run step;
    // negative: indexed, processes::table_row), inc mode, shared (one block
    // for all trials)
    std::vector<int64_t> m, period, inc, shared;
    std::vector<int64_t> slot;  // per operator: its column in `rows`, or -1
    int64_t n_indexed = 0;
    std::vector<double> rows;   // per run step, the indexed operators' rows
    int64_t row_steps = 0;      // steps that `rows` covers
    std::vector<int64_t> y;  // per element
    int64_t time = 0;        // address of the time signal
    int n_trials = 1;
    std::vector<double> table;  // laid out as processes::table_layout says
    processes::TableLayout layout;
    bool loaded = false;

    void set_table(const std::string& name, std::vector<double> data) override {
        if (name == "rows") {
            row_steps = processes::check_table_rows(period, slot, n_indexed, data);
            rows = std::move(data);
            return;
        }
        if (name != "table") return Instr<T>::set_table(name, std::move(data));
        layout = processes::table_layout(m, period, shared, n_trials,
                                         static_cast<int64_t>(data.size()));
        table = std::move(data);
        loaded = true;
    }

    void run(const Buffers<T>& buf, const StepInfo& info) override {
        if (!loaded) throw std::logic_error("process_table: table not loaded");
        const bool stepped = std::find(period.begin(), period.end(), 0) != period.end();
        if (stepped && info.run_step >= layout.step_rows)
            throw std::logic_error("process_table: no table row for step " +
                                   std::to_string(info.run_step) + " of this run");
        if (n_indexed > 0 && info.run_step >= row_steps)
            throw std::logic_error("process_table: no row index for step " +
                                   std::to_string(info.run_step) + " of this run");
        const int64_t nops = static_cast<int64_t>(m.size());
        for (int t = 0; t < buf.n_trials; ++t) {
            const double now = static_cast<double>(*buf.f.at(time, t));
            const int64_t trial_offset = (buf.trial0 + t) * layout.per_trial;
            for (int64_t j = 0, e = 0; j < nops; e += m[j], ++j) {
                const int64_t row = processes::table_row(period[j], now, info.dt, info.run_step,
                                                         rows.data(), n_indexed, slot[j]);
                const double* src = table.data() + layout.offset[j] +
                                    (shared[j] ? 0 : trial_offset) + row * m[j];
                for (int64_t k = 0; k < m[j]; ++k)
                    write_output(*buf.f.at(y[e + k], t), src[k], inc[j] != 0);
            }
        }
    }
};

template <typename T>
std::unique_ptr<Instr<T>> make_process_table(const InstrSpec& spec, const Buffers<T>& buf) {
    check_same_length(spec, {"m", "period", "inc", "shared"});
    auto op = std::make_unique<ProcessTable<T>>();
    op->m = spec.int_array("m");
    op->period = spec.int_array("period");
    op->inc = spec.int_array("inc");
    op->shared = spec.int_array("shared");
    op->y = spec.int_array("Y");
    op->time = static_cast<int64_t>(spec.scalar("time"));
    op->n_trials = buf.n_trials;
    int64_t elems = 0;
    for (size_t j = 0; j < op->m.size(); ++j) {
        if (op->m[j] < 0) throw std::invalid_argument(spec.kind + ": bad operator shape");
        elems += op->m[j];
    }
    if (elems != static_cast<int64_t>(op->y.size()))
        throw std::invalid_argument(spec.kind + ": 'Y' does not match 'm'");
    check_addresses(op->y, buf.f, spec.kind);
    check_addresses(std::vector<int64_t>{op->time}, buf.f, spec.kind);
    processes::IndexedSlots slots = processes::indexed_slots(op->period);
    op->slot = std::move(slots.slot);
    op->n_indexed = slots.n;
    return op;
}

NC_REGISTER_INSTR("lti_elementwise", make_lti_elementwise);
NC_REGISTER_INSTR("lti_state_space", make_lti_state_space);
NC_REGISTER_INSTR("triangle", make_triangle);
NC_REGISTER_INSTR("process_table", make_process_table);

}  // namespace
}  // namespace nc
