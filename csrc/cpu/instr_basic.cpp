// TimeUpdate, Reset, Copy and ElementwiseInc: element-wise gathers and scatters.
//
// Every operand is an array of addresses (see program.h), so slices, fancy
// indices, broadcasting and merged operators all reduce to the same loops.
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "parallel.h"
#include "program.h"
#include "segments.h"
#include "simd.h"

namespace nc {
namespace {

// step += 1; time = step * dt
template <typename T>
struct TimeUpdate : Instr<T> {
    bool splits_by_trial() const override { return true; }
    int64_t step_addr, time_addr;
    void run(const Buffers<T>& buf, const StepInfo& info) override {
        for (int t = 0; t < buf.n_trials; ++t) {
            int64_t* step = buf.i.at(step_addr, t);
            *step += 1;
            *buf.f.at(time_addr, t) = static_cast<T>(static_cast<double>(*step) * info.dt);
        }
    }
};

template <typename T>
std::unique_ptr<Instr<T>> make_time_update(const InstrSpec& spec, const Buffers<T>& buf) {
    auto op = std::make_unique<TimeUpdate<T>>();
    op->step_addr = static_cast<int64_t>(spec.scalar("step"));
    op->time_addr = static_cast<int64_t>(spec.scalar("time"));
    check_addresses(std::vector<int64_t>{op->step_addr}, buf.i, spec.kind);
    check_addresses(std::vector<int64_t>{op->time_addr}, buf.f, spec.kind);
    return op;
}

// dst[k] = value[k]
template <typename T>
struct Reset : Instr<T> {
    bool splits_by_trial() const override { return true; }
    std::vector<int64_t> dst;
    std::vector<T> value;
    std::vector<Segment> segments;  // runs of consecutive dst: one memcpy each
    void run(const Buffers<T>& buf, const StepInfo&) override {
        const int64_t n = static_cast<int64_t>(dst.size());
        for (int t = 0; t < buf.n_trials; ++t) {
            if (!segments.empty()) {
                for (const auto& seg : segments)
                    std::memcpy(buf.f.at(dst[seg.k0], t), value.data() + seg.k0,
                                seg.len * sizeof(T));
            } else {
                for (int64_t k = 0; k < n; ++k) *buf.f.at(dst[k], t) = value[k];
            }
        }
    }
};

template <typename T>
std::unique_ptr<Instr<T>> make_reset(const InstrSpec& spec, const Buffers<T>& buf) {
    check_same_length(spec, {"dst", "value"});
    auto op = std::make_unique<Reset<T>>();
    op->dst = spec.int_array("dst");
    op->value = to_scalar_vector<T>(spec.float_array("value"));
    check_addresses(op->dst, buf.f, spec.kind);
    op->segments = contiguous_segments({&op->dst}, buf.f.n_shared, INT64_MAX);
    return op;
}

// dst[k] (+)= src[k], in order, so repeated dst addresses accumulate (np.add.at).
// When src and dst overlap, sources are gathered first, as NumPy does.
template <typename T>
struct Copy : Instr<T> {
    bool splits_by_trial() const override { return true; }
    std::vector<int64_t> src, dst;
    bool inc = false, overlap = false;
    std::vector<std::vector<T>> scratch;  // per trial, only when overlap
    void run(const Buffers<T>& buf, const StepInfo&) override {
        const int64_t n = static_cast<int64_t>(dst.size());
        parallel_for(buf.n_trials, split_ways(n * buf.n_trials), [&](int64_t t) {
            if (overlap) {
                T* tmp = scratch[buf.trial0 + t].data();
                for (int64_t k = 0; k < n; ++k) tmp[k] = *buf.f.at(src[k], t);
                for (int64_t k = 0; k < n; ++k) {
                    T* d = buf.f.at(dst[k], t);
                    *d = inc ? *d + tmp[k] : tmp[k];
                }
            } else if (inc) {
                for (int64_t k = 0; k < n; ++k) *buf.f.at(dst[k], t) += *buf.f.at(src[k], t);
            } else {
                for (int64_t k = 0; k < n; ++k) *buf.f.at(dst[k], t) = *buf.f.at(src[k], t);
            }
        });
    }
};

template <typename T>
std::unique_ptr<Instr<T>> make_copy(const InstrSpec& spec, const Buffers<T>& buf) {
    check_same_length(spec, {"src", "dst"});
    auto op = std::make_unique<Copy<T>>();
    op->src = spec.int_array("src");
    op->dst = spec.int_array("dst");
    op->inc = spec.scalar("inc") != 0;
    op->overlap = spec.scalar("overlap", 0) != 0;
    check_addresses(op->src, buf.f, spec.kind);
    check_addresses(op->dst, buf.f, spec.kind);
    if (op->overlap) op->scratch.assign(buf.n_trials, std::vector<T>(op->dst.size()));
    return op;
}

// For each run r: dst[r] .. dst[r]+length[r] (+)= src[r] .. ; runs in order, so
// repeated destinations accumulate as in Copy.  A run lies inside one region.
template <typename T>
struct CopyRuns : Instr<T> {
    bool splits_by_trial() const override { return true; }
    std::vector<int64_t> src, dst, length;
    bool inc = false;
    int64_t total = 0;
    void run(const Buffers<T>& buf, const StepInfo&) override {
        const int64_t n_runs = static_cast<int64_t>(length.size());
        parallel_for(buf.n_trials, split_ways(total * buf.n_trials), [&](int64_t t) {
            with_simd([&]() NC_LAMBDA {
                for (int64_t r = 0; r < n_runs; ++r) {
                    const T* s = buf.f.at(src[r], t);
                    T* d = buf.f.at(dst[r], t);
                    const int64_t n = length[r];
                    if (inc) {
                        for (int64_t k = 0; k < n; ++k) d[k] += s[k];
                    } else {
                        for (int64_t k = 0; k < n; ++k) d[k] = s[k];
                    }
                }
            });
        });
    }
};

template <typename T>
std::unique_ptr<Instr<T>> make_copy_runs(const InstrSpec& spec, const Buffers<T>& buf) {
    check_same_length(spec, {"src", "dst", "length"});
    auto op = std::make_unique<CopyRuns<T>>();
    op->src = spec.int_array("src");
    op->dst = spec.int_array("dst");
    op->length = spec.int_array("length");
    op->inc = spec.scalar("inc") != 0;
    for (size_t r = 0; r < op->length.size(); ++r) {
        const int64_t n = op->length[r];
        if (n < 1) throw std::invalid_argument("copy_runs: run length must be >= 1");
        for (int64_t start : {op->src[r], op->dst[r]}) {
            check_addresses({start, start + n - 1}, buf.f, spec.kind);
            if (start < buf.f.n_shared && start + n > buf.f.n_shared)
                throw std::invalid_argument("copy_runs: run crosses the shared/state boundary");
        }
        op->total += n;
    }
    return op;
}

// Y[k] += A[k] * X[k]; with I (fusion.py): Y[k] = I[k] + A[k] * X[k], the one
// rounding of adding the product to a Y that a copy set to I, without writing
// Y twice (each Y address then appears once).
template <typename T>
struct ElementwiseInc : Instr<T> {
    bool splits_by_trial() const override { return true; }
    std::vector<int64_t> y, a, x, init;  // init empty: Y += A X
    std::vector<Segment> segments;  // runs where all operands advance by one
    void run(const Buffers<T>& buf, const StepInfo&) override {
        const int64_t n = static_cast<int64_t>(y.size());
        const bool has_init = !init.empty();
        parallel_for(buf.n_trials, split_ways(n * buf.n_trials), [&](int64_t t) {
            if (!segments.empty()) {
                with_simd([&]() NC_LAMBDA {
                    for (const auto& seg : segments) {  // in order: outputs may repeat
                        T* Y = buf.f.at(y[seg.k0], t);
                        const T* A = buf.f.at(a[seg.k0], t);
                        const T* X = buf.f.at(x[seg.k0], t);
                        if (has_init) {
                            const T* I = buf.f.at(init[seg.k0], t);
                            for (int64_t i = 0; i < seg.len; ++i) Y[i] = I[i] + A[i] * X[i];
                        } else {
                            for (int64_t i = 0; i < seg.len; ++i) Y[i] += A[i] * X[i];
                        }
                    }
                });
                return;
            }
            for (int64_t k = 0; k < n; ++k) {
                T* Y = buf.f.at(y[k], t);
                const T term = *buf.f.at(a[k], t) * *buf.f.at(x[k], t);
                *Y = (has_init ? *buf.f.at(init[k], t) : *Y) + term;
            }
        });
    }
};

template <typename T>
std::unique_ptr<Instr<T>> make_elementwise_inc(const InstrSpec& spec, const Buffers<T>& buf) {
    check_same_length(spec, {"Y", "A", "X"});
    auto op = std::make_unique<ElementwiseInc<T>>();
    op->y = spec.int_array("Y");
    op->a = spec.int_array("A");
    op->x = spec.int_array("X");
    check_addresses(op->y, buf.f, spec.kind);
    check_addresses(op->a, buf.f, spec.kind);
    check_addresses(op->x, buf.f, spec.kind);
    std::vector<const std::vector<int64_t>*> operands{&op->y, &op->a, &op->x};
    if (spec.ints.count("I") > 0) {  // optional: Y starts from I (fusion.py)
        check_same_length(spec, {"Y", "I"});
        op->init = spec.int_array("I");
        check_addresses(op->init, buf.f, spec.kind);
        std::vector<int64_t> sorted = op->y;
        std::sort(sorted.begin(), sorted.end());
        if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end())
            throw std::invalid_argument(spec.kind + ": with I, each Y address must appear once");
        operands.push_back(&op->init);
    }
    op->segments = contiguous_segments(operands, buf.f.n_shared, INT64_MAX);
    return op;
}

NC_REGISTER_INSTR("time_update", make_time_update);
NC_REGISTER_INSTR("reset", make_reset);
NC_REGISTER_INSTR("copy", make_copy);
NC_REGISTER_INSTR("copy_runs", make_copy_runs);
NC_REGISTER_INSTR("elementwise_inc", make_elementwise_inc);

}  // namespace
}  // namespace nc
