// Loading linear filters (lti_elementwise, lti_state_space): alone, or
// fused into the mat-vec that feeds them; and Triangle synapses (triangle).
// Included by device_instrs.h, after its shared helpers.
#pragma once

namespace nc {
namespace NC_DEV_NS {

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
    const ElementOwners owners = element_owners(m);
    std::vector<int64_t> a0, bc0;
    int64_t a_size = 0, bc_size = 0, max_n = 1;
    for (size_t j = 0; j < n.size(); ++j) {
        a0.push_back(a_size);
        bc0.push_back(bc_size);
        a_size += n[j] * n[j];
        bc_size += n[j];
        max_n = std::max(max_n, n[j]);
    }
    const auto& y = spec.int_array("Y");
    const int64_t elems = static_cast<int64_t>(owners.owner.size());
    k.n_elem = elems;
    k.max_n = max_n;
    k.serial = has_duplicates(y);
    k.n = prog.upload(n);
    k.m = prog.upload(m);
    k.x = prog.upload(spec.int_array("X"));
    k.general = prog.upload(spec.int_array("general"));
    k.inc = prog.upload(spec.int_array("inc"));
    k.elem0 = prog.upload(owners.first);
    k.a0 = prog.upload(a0);
    k.bc0 = prog.upload(bc0);
    k.A = prog.upload(spec.float_array("A"));
    k.B = prog.upload(spec.float_array("B"));
    k.C = prog.upload(spec.float_array("C"));
    k.D = prog.upload(spec.float_array("D"));
    k.block = prog.upload(owners.owner);
    k.u = prog.addr(spec.int_array("U"));
    k.y = prog.addr(y);
    const int64_t threads = k.serial ? prog.n_trials() : elems * prog.n_trials();
    k.scratch = prog.template scratch<double>(static_cast<size_t>(std::max<int64_t>(threads, 1)) * max_n);
    return for_each_instr<T>(elems ? threads : 0, k);
}

template <typename T>
struct TriangleInstr : DInstr<T> {
    TriangleOps<T> o;
    int n_trials = 1;
    void launch(Exec& ex, const StepRef<T>&) override {
        ex.for_each(o.serial ? n_trials : o.n_elem * n_trials, TriangleTaps<T>{o});
        ex.for_each(o.n_ops * n_trials, TriangleAdvance<T>{o});
    }
    int64_t launches() const override { return 2; }
};

template <typename T>
InstrPtr<T> make_triangle(const InstrSpec& spec, Program<T>& prog) {
    auto in = std::make_unique<TriangleInstr<T>>();
    in->n_trials = prog.n_trials();
    TriangleOps<T>& o = in->o;
    const auto& m = spec.int_array("m");
    const ElementOwners owners = element_owners(m);
    const auto& y = spec.int_array("Y");
    o.p = prog.pools();
    o.n_ops = static_cast<int64_t>(m.size());
    o.n_elem = static_cast<int64_t>(owners.owner.size());
    o.serial = has_duplicates(y);
    o.n = prog.upload(spec.int_array("n"));
    o.m = prog.upload(m);
    o.x = prog.upload(spec.int_array("X"));
    o.xi = prog.upload(spec.int_array("Xi"));
    o.elem0 = prog.upload(owners.first);
    o.inc = prog.upload(spec.int_array("inc"));
    o.wide = prog.upload(spec.int_array("wide"));
    o.n0 = prog.upload(spec.float_array("n0"));
    o.ndiff = prog.upload(spec.float_array("ndiff"));
    o.op = prog.upload(owners.owner);
    o.u = prog.addr(spec.int_array("U"));
    o.y = prog.addr(y);
    o.state = prog.addr(spec.int_array("state"));
    return in;
}

}  // namespace NC_DEV_NS
}  // namespace nc
