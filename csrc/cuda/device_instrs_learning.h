// Loading learning rules: PES, BCM, Oja and Voja, and RLS.
// Included by device_instrs.h, after its shared helpers.
#pragma once

namespace nc {
namespace NC_DEV_NS {

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

}  // namespace NC_DEV_NS
}  // namespace nc
