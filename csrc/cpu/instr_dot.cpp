// DotInc as a batched ragged matrix-vector product, and SparseDotInc (CSR).
//
// Y += A @ X for every block of a merged group, every trial.  Each block is a
// strided view: A[r, c] = A0[r*A_rs + c*A_cs], X[c] = X0[c*X_s], Y[r] = Y0[r*Y_s].
#include "parallel.h"
#include "program.h"

namespace nc {
namespace {

template <typename T>
inline T dot_contiguous(const T* a, const T* x, int64_t n) {
    T acc = 0;
#ifdef _OPENMP
#pragma omp simd reduction(+ : acc)
#endif
    for (int64_t c = 0; c < n; ++c) acc += a[c] * x[c];
    return acc;
}

template <typename T>
struct DotInc : Instr<T> {
    std::vector<int64_t> rows, cols, a, a_rs, a_cs, x, x_s, y, y_s;
    int64_t work = 0;

    void block(const Buffers<T>& buf, int64_t b, int t) const {
        const T* A = buf.f.at(a[b], t);
        const T* X = buf.f.at(x[b], t);
        T* Y = buf.f.at(y[b], t);
        const int64_t nr = rows[b], nc = cols[b], rs = a_rs[b], cs = a_cs[b], xs = x_s[b],
                      ys = y_s[b];
        if (cs == 1 && xs == 1) {
            for (int64_t r = 0; r < nr; ++r) Y[r * ys] += dot_contiguous(A + r * rs, X, nc);
        } else {
            for (int64_t r = 0; r < nr; ++r) {
                T acc = 0;
                for (int64_t c = 0; c < nc; ++c) acc += A[r * rs + c * cs] * X[c * xs];
                Y[r * ys] += acc;
            }
        }
    }

    void run(const Buffers<T>& buf, const StepInfo&) override {
        const int64_t nb = static_cast<int64_t>(rows.size());
        const int64_t jobs = nb * buf.n_trials;
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1) if (work * buf.n_trials >= kParallelMinWork)
#endif
        for (int64_t j = 0; j < jobs; ++j) block(buf, j % nb, static_cast<int>(j / nb));
    }
};

template <typename T>
std::unique_ptr<Instr<T>> make_dot_inc(const InstrSpec& spec, const Buffers<T>& buf) {
    check_same_length(spec, {"rows", "cols", "A", "A_rs", "A_cs", "X", "X_s", "Y", "Y_s"});
    auto op = std::make_unique<DotInc<T>>();
    op->rows = spec.int_array("rows");
    op->cols = spec.int_array("cols");
    op->a = spec.int_array("A");
    op->a_rs = spec.int_array("A_rs");
    op->a_cs = spec.int_array("A_cs");
    op->x = spec.int_array("X");
    op->x_s = spec.int_array("X_s");
    op->y = spec.int_array("Y");
    op->y_s = spec.int_array("Y_s");
    for (size_t b = 0; b < op->rows.size(); ++b) {
        const int64_t nr = op->rows[b], nc = op->cols[b];
        if (nr < 0 || nc < 0) throw std::invalid_argument("dot_inc: negative block shape");
        op->work += nr * nc;
        if (nr == 0 || nc == 0) continue;
        // The extreme corners of each strided view must lie inside the buffer.
        auto last = [](int64_t base, int64_t n, int64_t s) { return base + (n - 1) * s; };
        check_addresses({op->a[b], last(op->a[b], nr, op->a_rs[b]) + (nc - 1) * op->a_cs[b],
                         op->x[b], last(op->x[b], nc, op->x_s[b]), op->y[b],
                         last(op->y[b], nr, op->y_s[b])},
                        buf.f, spec.kind);
    }
    return op;
}

// Y += A @ X with A in CSR form (constant data held by the instruction).
template <typename T>
struct SparseDotInc : Instr<T> {
    std::vector<int64_t> indptr, indices;
    std::vector<T> data;
    int64_t x = 0, x_s = 1, y = 0, y_s = 1;
    void run(const Buffers<T>& buf, const StepInfo&) override {
        const int64_t nr = static_cast<int64_t>(indptr.size()) - 1;
        for (int t = 0; t < buf.n_trials; ++t) {
            const T* X = buf.f.at(x, t);
            T* Y = buf.f.at(y, t);
            for (int64_t r = 0; r < nr; ++r) {
                T acc = 0;
                for (int64_t k = indptr[r]; k < indptr[r + 1]; ++k)
                    acc += data[k] * X[indices[k] * x_s];
                Y[r * y_s] += acc;
            }
        }
    }
};

template <typename T>
std::unique_ptr<Instr<T>> make_sparse_dot_inc(const InstrSpec& spec, const Buffers<T>& buf) {
    auto op = std::make_unique<SparseDotInc<T>>();
    op->indptr = spec.int_array("indptr");
    op->indices = spec.int_array("indices");
    op->data = to_scalar_vector<T>(spec.float_array("data"));
    op->x = static_cast<int64_t>(spec.scalar("X"));
    op->x_s = static_cast<int64_t>(spec.scalar("X_s"));
    op->y = static_cast<int64_t>(spec.scalar("Y"));
    op->y_s = static_cast<int64_t>(spec.scalar("Y_s"));
    const int64_t n_cols = static_cast<int64_t>(spec.scalar("cols"));
    if (op->indptr.empty() || op->indptr.front() != 0 ||
        op->indptr.back() != static_cast<int64_t>(op->indices.size()) ||
        op->indices.size() != op->data.size())
        throw std::invalid_argument("sparse_dot_inc: malformed CSR arrays");
    for (size_t r = 0; r + 1 < op->indptr.size(); ++r)
        if (op->indptr[r] > op->indptr[r + 1])
            throw std::invalid_argument("sparse_dot_inc: indptr not monotonic");
    for (int64_t c : op->indices)
        if (c < 0 || c >= n_cols) throw std::invalid_argument("sparse_dot_inc: bad column");
    const int64_t nr = static_cast<int64_t>(op->indptr.size()) - 1;
    if (nr > 0 && n_cols > 0)
        check_addresses({op->x, op->x + (n_cols - 1) * op->x_s, op->y,
                         op->y + (nr - 1) * op->y_s},
                        buf.f, spec.kind);
    return op;
}

NC_REGISTER_INSTR("dot_inc", make_dot_inc);
NC_REGISTER_INSTR("sparse_dot_inc", make_sparse_dot_inc);

}  // namespace
}  // namespace nc
