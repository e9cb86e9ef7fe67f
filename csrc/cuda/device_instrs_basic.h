// Loading element-wise instructions (time_update, reset, copy, copy_runs,
// elementwise_inc) as batch items, and any functor over n indices as one
// launch (for_each_instr, which the other families use).
// Included by device_instrs.h, after its shared helpers.
#pragma once

namespace nc {
namespace NC_DEV_NS {

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

}  // namespace NC_DEV_NS
}  // namespace nc
