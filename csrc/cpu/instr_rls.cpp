// SimRLS (Nengo's recursive least squares rule), one operator per instruction:
// per trial, Pr = P r, the gain, the rank-one update of P and the weight change
// (csrc/kernels/learning.h).  Operands are strided views; P is trial state.
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "../kernels/learning.h"
#include "parallel.h"
#include "program.h"

namespace nc {
namespace {

template <typename T>
struct RlsInstr : Instr<T> {
    bool splits_by_trial() const override { return true; }
    int64_t n = 0, m = 0;  // presynaptic size (P is n x n), error size
    int64_t p = 0, p_rs = 0, p_cs = 0, r = 0, r_s = 0, e = 0, e_s = 0;
    int64_t d = 0, d_rs = 0, d_cs = 0;
    std::vector<std::vector<T>> pr;  // per trial: P r

    void run(const Buffers<T>& buf, const StepInfo&) override {
        parallel_for(buf.n_trials, split_ways(buf.n_trials * n * (n + m)), [&](int64_t t) {
            T* P = buf.f.at(p, t);
            const T* R = buf.f.at(r, t);
            const T* E = buf.f.at(e, t);
            T* D = buf.f.at(d, t);
            T* Pr = pr[buf.trial0 + t].data();
            for (int64_t i = 0; i < n; ++i) Pr[i] = learning::rls_dot(n, P + i * p_rs, p_cs, R, r_s);
            const T g = learning::rls_gain(learning::rls_dot(n, R, r_s, Pr, int64_t(1)));
            for (int64_t i = 0; i < n; ++i)
                for (int64_t j = 0; j < n; ++j) {
                    T& x = P[i * p_rs + j * p_cs];
                    x = learning::rls_p(x, Pr[i], Pr[j], g);
                }
            for (int64_t k = 0; k < m; ++k)
                for (int64_t j = 0; j < n; ++j)
                    D[k * d_rs + j * d_cs] = learning::rls_delta(E[k * e_s], g, Pr[j]);
        });
    }
};

// The corners of a (rows x cols) view (program.h's check_corners).
template <typename E>
void check_view(int64_t a, int64_t rows, int64_t rs, int64_t cols, int64_t cs,
                const Pool<E>& pool, const std::string& what) {
    if (rows == 0 || cols == 0) return;
    check_corners({a, a + (rows - 1) * rs, a + (cols - 1) * cs,
                   a + (rows - 1) * rs + (cols - 1) * cs}, pool, what);
}

template <typename T>
std::unique_ptr<Instr<T>> make_rls(const InstrSpec& spec, const Buffers<T>& buf) {
    auto op = std::make_unique<RlsInstr<T>>();
    auto get = [&](const char* name) { return static_cast<int64_t>(spec.scalar(name)); };
    op->n = get("n");
    op->m = get("m");
    if (op->n < 1 || op->m < 0) throw std::invalid_argument(spec.kind + ": bad sizes");
    op->p = get("P"), op->p_rs = get("P_rs"), op->p_cs = get("P_cs");
    op->r = get("r"), op->r_s = get("r_s");
    op->e = get("error"), op->e_s = get("error_s");
    op->d = get("delta"), op->d_rs = get("delta_rs"), op->d_cs = get("delta_cs");
    check_view(op->p, op->n, op->p_rs, op->n, op->p_cs, buf.f, spec.kind + " P");
    check_view(op->r, op->n, op->r_s, 1, 0, buf.f, spec.kind + " r");
    check_view(op->e, op->m, op->e_s, 1, 0, buf.f, spec.kind + " error");
    check_view(op->d, op->m, op->d_rs, op->n, op->d_cs, buf.f, spec.kind + " delta");
    if (op->p < buf.f.n_shared || op->d < buf.f.n_shared)
        throw std::invalid_argument(spec.kind + ": P and delta must be trial state");
    op->pr.assign(buf.n_trials, std::vector<T>(op->n));
    return op;
}

NC_REGISTER_INSTR("learning_rls", make_rls);

}  // namespace
}  // namespace nc
