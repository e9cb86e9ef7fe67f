// DotInc as a batched ragged matrix-vector product, and SparseDotInc (CSR).
//
// Y += A @ X for every block of a merged group, every trial.  Each block is a
// strided view: A[r, c] = A0[r*A_rs + c*A_cs], X[c] = X0[c*X_s], Y[r] = Y0[r*Y_s].
//
// Three kernels, chosen per block when the instruction is built:
// - columns: A shared by all trials (never written: encoders, transforms) with
//   at least 8 rows and few columns.  The instruction keeps a packed copy of
//   A^T, and a tile of rows accumulates column by column, vectorised across
//   rows (no horizontal sums), two trials at a time (four, at AVX-512's
//   width, for blocks of 8 columns or more in minibatches); a single trial
//   of a one-column block (encoders of 1-D ensembles) in a plain vector loop.
// - rows: X contiguous, and A rows contiguous (decoders, learned weights) or
//   A shared (then packed row-major): dot products vectorised along the row
//   in AVX2 vectors at most (AVX-512 CPUs give AVX2's sums),
//   eight or four rows at a time sharing X loads; a shared A in minibatches
//   four trials at a time sharing A loads (two rows at a time, or, at
//   AVX-512's width, pairs of rows' AVX2 vectors in one); and the other
//   trials' rows of blocks of fewer than 4 rows four at a time (row batches:
//   decoders of 1-D ensembles).
// - strided: anything else, element by element.
// (The kernels: dot_columns.h, dot_rows.h, dot_sparse_x.h; this file picks
// them per block, packs A and splits the work into jobs.)
// Blocks of little work share a job (what a split over threads hands out).
// Rows blocks with a shared A of 8 rows or more and many columns (decoders
// of 8-D ensembles and up, weights out of neurons) also keep A^T: when at
// most a quarter of a trial's X is nonzero (spikes), only the columns of the
// nonzero entries are added (sparse_x_kernel; at AVX-512's width at any
// minibatch size: the listing and the multiply-adds both take whole 64-byte
// vectors, and each row's sums are AVX2's).  (With fewer rows the dense
// kernel is as fast as listing the nonzeros.)
// Every row's sum starts from zero and is added to Y once, as np.dot would.
// This file is compiled with FMA contraction on (CMakeLists.txt): summation
// order in products is BLAS's business in Nengo too.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <utility>

#include "dot_columns.h"
#include "dot_rows.h"
#include "dot_sparse_x.h"
#include "parallel.h"
#include "program.h"
#include "simd.h"

namespace nc {
namespace {

using namespace dot;  // the kernels (dot_columns.h, dot_rows.h, dot_sparse_x.h)

// Shapes of shared A packed transposed for the columns kernel.
constexpr int64_t kPackMaxCols = 64, kPackMinRows = 8;
// Elements of padding after the packed copies (more than a vector).
constexpr int64_t kPackPad = 64;
// Shapes of shared A that also get A^T for inputs that are mostly zeros.
constexpr int64_t kSparseMinRows = 8, kSparseMinCols = 32;
// Rows per parallel job.
constexpr int64_t kJobRows = 256;
// Trials of a columns-kernel job whose X and Y pointers are listed at a time.
constexpr int kColumnsTrials = 64;
// Multiply-adds of a job of several whole blocks, at most, all trials together
// (jobs are what a split hands out: minibatches keep a job per block).
constexpr int64_t kBatchWork = 8192;
// Rows kernel blocks of fewer rows than this (less than its tile of four rows)
// run their rows with other blocks' (row batches) where a single trial
// cannot share A's loads with three more.
constexpr int64_t kBatchMaxRows = 4;
// Columns-kernel blocks that run at AVX-512's width, four trials at a time:
// enough multiply-adds per A^T load to be bound by them (encoders of 8-D
// ensembles and up, in minibatches).  Narrower blocks and single trials
// measured slower at 64 bytes (docs/benchmarks.md items 18, 30).
constexpr int64_t kWideMinCols = 8;
// Rows-kernel blocks (shared A) of this many columns or more, four rows or
// more, run their four-trial tiles at AVX-512's width (rows_pairs_tile).
constexpr int64_t kWideMinRowsCols = 64;
constexpr int kWideMinTrials = 4;

enum Kind { kColumns, kRows, kStrided };

struct Block {
    int64_t rows, cols, a, a_rs, a_cs, x, x_s, y, y_s;
    int64_t init, init_s;  // Y starts from I[r * init_s] (init >= 0), else from Y
    Kind kind;
    int64_t packed;  // offset of A's packed copy in `packed` (columns: A^T,
                     // cols x rows; rows: A, rows x cols), or -1: A in the pool
    bool transposed; // the packed copy is A^T
    bool shared;     // A is the same for every trial
    int64_t sparse;  // offset of A^T (cols x round_up(rows, 16)) in `packed`, or -1
    bool finite;     // every element of A is finite (refresh); else no sparse skipping
    bool volatile_a; // A may change between runs without notice (re-packed every run)
};

// Rows [r0, r1) of one block, or several whole small blocks (b1 > b0 + 1):
// one job each would cost more to hand out than to run.
struct Job {
    int64_t b0, b1, r0, r1;
    bool row_batch;  // blocks of few rows and the same shape, rows kernel, A
                     // shared by all trials or by none: their rows four at a
                     // time (rows_of_blocks)
    bool wide;       // a sparse-input block, or kWideMinTrials trials or more and
                     // a columns-kernel block of kWideMinCols columns or more, or
                     // a shared rows-kernel block of kWideMinRowsCols: AVX-512
                     // where the CPU has it
};

template <typename T>
struct DotInc : Instr<T> {
    bool splits_by_trial() const override { return true; }
    std::vector<Block> blocks;
    std::vector<Job> jobs;
    std::vector<T> packed;  // A^T of every columns-kernel block
    int64_t work = 0;

    // Copies A of block b into its packed slot (A^T when transposed).
    void pack(const Buffers<T>& buf, const Block& b) {
        const T* A = buf.f.at(b.a, 0);
        T* dst = packed.data() + b.packed;
        const int64_t n_outer = b.transposed ? b.cols : b.rows;
        const int64_t n_inner = b.transposed ? b.rows : b.cols;
        for (int64_t u = 0; u < n_outer; ++u)
            for (int64_t w = 0; w < n_inner; ++w)
                *dst++ = b.transposed ? A[w * b.a_rs + u * b.a_cs] : A[u * b.a_rs + w * b.a_cs];
    }

    // A^T of block b with rows padded (sparse_rows), for sparse_x_kernel;
    // records whether A is finite (0 * inf would be nan: skipping it would hide that).
    void pack_sparse(const Buffers<T>& buf, Block& b) {
        const T* A = buf.f.at(b.a, 0);
        const int64_t pad = sparse_rows(b.rows);
        T* dst = packed.data() + b.sparse;
        b.finite = true;
        for (int64_t c = 0; c < b.cols; ++c)
            for (int64_t r = 0; r < b.rows; ++r) {
                const T v = A[r * b.a_rs + c * b.a_cs];
                b.finite = b.finite && std::isfinite(v);
                dst[c * pad + r] = v;
            }
    }

    // Y = I over the job's rows, in every trial: the kernels below then add
    // the product to it, as they would to a Y that a copy had set.
    static void start_from_init(const Buffers<T>& buf, const Block& b, int64_t r0, int64_t r1) {
        for (int t = 0; t < buf.n_trials; ++t) {
            const T* I = buf.f.at(b.init, t);
            T* Y = buf.f.at(b.y, t);
            for (int64_t r = r0; r < r1; ++r) Y[r * b.y_s] = I[r * b.init_s];
        }
    }

    // A of a rows-kernel block for trial t (its packed copy, or in the pool), and its row stride.
    NC_INLINE const T* rows_a(const Buffers<T>& buf, const Block& b, int t, int64_t* rs) const {
        const bool own = b.packed >= 0;
        *rs = own ? b.cols : b.a_rs;
        return own ? packed.data() + b.packed : buf.f.at(b.a, t);
    }

    // Shared weights may have changed between runs (training, load_params):
    // re-packed when Python says so (shared_changed) and, for a block whose A
    // Python code may write through a view it keeps (not a Nengo-readonly
    // signal), every run.
    void refresh(const Buffers<T>& buf, bool shared_changed) override {
        for (Block& b : blocks) {
            if (!shared_changed && !b.volatile_a) continue;
            if (b.packed >= 0) pack(buf, b);
            if (b.sparse >= 0) pack_sparse(buf, b);
        }
    }

    // Rows [r0, r1) of a shared A for four trials: at AVX-512's width in pairs
    // of AVX2 vectors (B = 64), else rows_kernel_trials.
    template <int B>
    static NC_INLINE void rows_trials(const T* A, int64_t rs, int64_t cols, const T* const* X,
                                      T* const* Y, int64_t ys, int64_t r0, int64_t r1) {
        if constexpr (B == 64)
            rows_kernel_trials_avx512<T>(A, rs, cols, X, Y, ys, r0, r1);
        else
            rows_kernel_trials<T, B>(A, rs, cols, X, Y, ys, r0, r1);
    }

    // Rows [r0, r1) of block b, every trial.
    template <int B>
    NC_INLINE void block_rows(const Buffers<T>& buf, const Block& b, int64_t r0, int64_t r1) const {
        const int n_trials = buf.n_trials;
        // the rows kernels at AVX2's width under AVX-512 too (a Job::wide block
        // of many columns: its four-trial tiles in pairs of AVX2 vectors), so
        // that their sums are AVX2's; sparse_x_kernel at B (lanes are rows)
        constexpr int BR = B > 32 ? 32 : B;
        const bool sparse = b.sparse >= 0 && b.finite;
        // the columns kernel stores I + A X itself; the others add to Y = I
        const bool columns = b.kind == kColumns && !sparse;
        if (b.init >= 0 && !columns) start_from_init(buf, b, r0, r1);
        int t = 0;
        if (sparse) {  // a job per trial, all rows
            const T* AT = packed.data() + b.sparse;
            int64_t rs;
            const T* A = rows_a(buf, b, 0, &rs);
            thread_local std::vector<int32_t> listed;
            if (static_cast<int64_t>(listed.size()) < b.cols + kPackPad)
                listed.resize(b.cols + kPackPad);  // once
            // trials whose X is dense: four at a time through the dense kernel
            const T* DX[4];
            T* DY[4];
            int n_dense = 0;
            for (; t < n_trials; ++t) {
                const T* X = buf.f.at(b.x, t);
                T* Y = buf.f.at(b.y, t);
                if (sparse_x_kernel<T, B>(AT, b.rows, b.cols, X, Y, b.y_s, listed.data()))
                    continue;
                DX[n_dense] = X, DY[n_dense] = Y;
                if (++n_dense == 4) {
                    rows_trials<B>(A, rs, b.cols, DX, DY, b.y_s, 0, b.rows);
                    n_dense = 0;
                }
            }
            for (int i = 0; i < n_dense; ++i)
                rows_kernel<T, BR>(A, rs, b.cols, DX[i], DY[i], b.y_s, 0, b.rows);
            return;
        }
        if (columns && n_trials == 1 && b.cols == 1) {
            const T* AT = packed.data() + b.packed;
            const T* X = buf.f.at(b.x, 0);
            T* Y = buf.f.at(b.y, 0);
            const bool from_init = b.init >= 0;
            const T* Z = from_init ? buf.f.at(b.init, 0) : Y;
            const int64_t zs = from_init ? b.init_s : b.y_s;
            if (b.y_s == 1 && zs == 1)
                columns_one_trial<T, B, true>(AT, b.rows, b.cols, X, b.x_s, Y, 1, Z, 1, r0, r1);
            else
                columns_one_trial<T, B, false>(AT, b.rows, b.cols, X, b.x_s, Y, b.y_s, Z, zs,
                                               r0, r1);
            return;
        }
        if (columns) {
            // all trials: pointers to their X, Y and I (at most kColumnsTrials at a time)
            const T* AT = packed.data() + b.packed;
            const T* X[kColumnsTrials];
            T* Y[kColumnsTrials];
            const T* I[kColumnsTrials];
            const T* const* init = b.init >= 0 ? I : nullptr;
            for (int t0 = 0; t0 < n_trials; t0 += kColumnsTrials) {
                const int nt = std::min(kColumnsTrials, n_trials - t0);
                for (int i = 0; i < nt; ++i) {
                    X[i] = buf.f.at(b.x, t0 + i), Y[i] = buf.f.at(b.y, t0 + i);
                    if (init) I[i] = buf.f.at(b.init, t0 + i);
                }
                if (b.y_s == 1)
                    columns_kernel<T, B, true>(AT, b.rows, b.cols, X, b.x_s, Y, 1, init,
                                               b.init_s, nt, r0, r1);
                else
                    columns_kernel<T, B, false>(AT, b.rows, b.cols, X, b.x_s, Y, b.y_s, init,
                                                b.init_s, nt, r0, r1);
            }
            return;
        }
        if (b.kind == kRows && b.shared) t = rows_four_trials<B>(buf, b, r0, r1);
        for (; t < n_trials; ++t) {
            const T* X = buf.f.at(b.x, t);
            T* Y = buf.f.at(b.y, t);
            if (b.kind == kRows) {
                int64_t rs;
                const T* A = rows_a(buf, b, t, &rs);
                rows_kernel<T, BR>(A, rs, b.cols, X, Y, b.y_s, r0, r1);
            } else {
                const T* A = buf.f.at(b.a, t);
                for (int64_t r = r0; r < r1; ++r) {
                    T acc = 0;
                    for (int64_t c = 0; c < b.cols; ++c)
                        acc += A[r * b.a_rs + c * b.a_cs] * X[c * b.x_s];
                    Y[r * b.y_s] += acc;
                }
            }
        }
    }

    // Rows [r0, r1) of a shared rows-kernel block for the trials in whole
    // fours: four trials at a time share the loads of A (rows_trials).
    // Returns the first trial left.
    template <int B>
    NC_INLINE int rows_four_trials(const Buffers<T>& buf, const Block& b, int64_t r0,
                                   int64_t r1) const {
        int64_t rs;
        const T* A = rows_a(buf, b, 0, &rs);
        int t = 0;
        for (; t + 4 <= buf.n_trials; t += 4) {
            const T* X[4];
            T* Y[4];
            for (int i = 0; i < 4; ++i) X[i] = buf.f.at(b.x, t + i), Y[i] = buf.f.at(b.y, t + i);
            rows_trials<B>(A, rs, b.cols, X, Y, b.y_s, r0, r1);
        }
        return t;
    }

    // A row batch (Job::row_batch): shared A, trials in whole fours as
    // block_rows runs them; the other trials' rows of all the job's blocks
    // four at a time.  The same sums, in the same order, as block by block.
    template <int B>
    NC_INLINE void row_batch(const Buffers<T>& buf, const Job& j) const {
        const int64_t cols = blocks[j.b0].cols;
        int first = 0;  // trials before it ran four at a time
        for (int64_t k = j.b0; k < j.b1; ++k) {
            const Block& b = blocks[k];
            if (b.init >= 0) start_from_init(buf, b, 0, b.rows);
            if (b.shared) first = rows_four_trials<B>(buf, b, 0, b.rows);
        }
        const T* A[4];
        const T* X[4];
        T* Y[4];
        for (int t = first; t < buf.n_trials; ++t) {
            int n = 0;
            for (int64_t k = j.b0; k < j.b1; ++k) {
                const Block& b = blocks[k];
                int64_t rs;
                const T* a = rows_a(buf, b, t, &rs);
                const T* x = buf.f.at(b.x, t);
                T* y = buf.f.at(b.y, t);
                for (int64_t r = 0; r < b.rows; ++r) {
                    A[n] = a + r * rs, X[n] = x, Y[n] = y + r * b.y_s;
                    if (++n == 4) {
                        rows_of_blocks<T, B, 4>(A, X, Y, cols);
                        n = 0;
                    }
                }
            }
            for (int i = 0; i < n; ++i) rows_of_blocks<T, B, 1>(A + i, X + i, Y + i, cols);
        }
    }

    template <int B>
    NC_INLINE void job(const Buffers<T>& buf, const Job& j) const {
        const bool whole = j.b1 > j.b0 + 1;
        for (int64_t k = j.b0; k < j.b1; ++k)
            block_rows<B>(buf, blocks[k], whole ? 0 : j.r0, whole ? blocks[k].rows : j.r1);
    }

    // The OpenMP region stays outside the AVX2 functions (outlined loop bodies
    // would not inherit their target).  Row batches are a function of their
    // own: inlined beside the other kernels, they cost the columns kernel 5-10 %.
    NC_TARGET_AVX2 void job_avx2(const Buffers<T>& buf, const Job& j) const { job<32>(buf, j); }
    NC_TARGET_AVX512 void job_avx512(const Buffers<T>& buf, const Job& j) const {
        job<64>(buf, j);
    }
    NC_TARGET_AVX2 void row_batch_avx2(const Buffers<T>& buf, const Job& j) const {
        row_batch<32>(buf, j);
    }

    void run(const Buffers<T>& buf, const StepInfo&) override {
        const int level = simd_level();
        const bool avx2 = level >= kSimdAvx2, avx512 = level >= kSimdAvx512;
        parallel_for(
            static_cast<int64_t>(jobs.size()), split_ways(work * buf.n_trials),
            [&](int64_t j) {
                const Job& job_j = jobs[j];
                if (job_j.row_batch)
                    avx2 ? row_batch_avx2(buf, job_j) : row_batch<16>(buf, job_j);
                else if (job_j.wide && avx512)
                    job_avx512(buf, job_j);
                else
                    avx2 ? job_avx2(buf, job_j) : job<16>(buf, job_j);
            },
            true);
    }
};

template <typename T>
std::unique_ptr<Instr<T>> make_dot_inc(const InstrSpec& spec, const Buffers<T>& buf) {
    check_same_length(spec, {"rows", "cols", "A", "A_rs", "A_cs", "X", "X_s", "Y", "Y_s"});
    auto op = std::make_unique<DotInc<T>>();
    const auto &rows = spec.int_array("rows"), &cols = spec.int_array("cols");
    const auto &a = spec.int_array("A"), &a_rs = spec.int_array("A_rs"),
               &a_cs = spec.int_array("A_cs");
    const auto &x = spec.int_array("X"), &x_s = spec.int_array("X_s");
    const auto &y = spec.int_array("Y"), &y_s = spec.int_array("Y_s");
    // optional: blocks that start from I instead of adding to Y (fusion.py)
    const bool has_init = spec.ints.count("I") > 0;
    if (has_init) check_same_length(spec, {"rows", "I", "I_s"});
    const bool has_volatile = spec.ints.count("A_volatile") > 0;
    if (has_volatile) check_same_length(spec, {"rows", "A_volatile"});
    int64_t batch_work = -1;  // multiply-adds of the last job, if it takes more small blocks
    for (size_t i = 0; i < rows.size(); ++i) {
        const int64_t nr = rows[i], nc = cols[i];
        if (nr < 0 || nc < 0) throw std::invalid_argument("dot_inc: negative block shape");
        op->work += nr * nc;
        const int64_t init = has_init ? spec.int_array("I")[i] : -1;
        const int64_t init_s = has_init ? spec.int_array("I_s")[i] : 0;
        if (init < -1) throw std::invalid_argument("dot_inc: I must be an address or -1");
        if (init >= 0 && (nr == 0 || nc == 0))
            throw std::invalid_argument("dot_inc: an empty block cannot start from I");
        if (nr == 0 || nc == 0) continue;
        // The corners of each strided view must lie inside the buffer.
        auto last = [](int64_t base, int64_t n, int64_t s) { return base + (n - 1) * s; };
        const int64_t a_r = last(a[i], nr, a_rs[i]) - a[i], a_c = last(a[i], nc, a_cs[i]) - a[i];
        const std::vector<int64_t> corners{a[i], a[i] + a_r, a[i] + a_c, a[i] + a_r + a_c};
        check_addresses(corners, buf.f, spec.kind);
        check_addresses({x[i], last(x[i], nc, x_s[i]), y[i], last(y[i], nr, y_s[i])}, buf.f,
                        spec.kind);
        if (init >= 0) check_addresses({init, last(init, nr, init_s)}, buf.f, spec.kind);
        const bool shared = *std::max_element(corners.begin(), corners.end()) < buf.f.n_shared;
        // optional (absent: every block volatile, the safe choice)
        const bool volatile_a = !has_volatile || spec.int_array("A_volatile")[i] != 0;
        Block b{nr,   nc,     a[i],     a_rs[i], a_cs[i], x[i],  x_s[i], y[i],
                y_s[i], init, init_s, kStrided, -1,    false, false, -1,    false, volatile_a};
        // Keep a copy of shared A in the layout the kernel wants (A^T for
        // columns, contiguous rows for rows); `refresh` re-packs it.
        auto reserve_pack = [&](bool transposed) {
            b.packed = static_cast<int64_t>(op->packed.size());
            b.transposed = transposed;
            op->packed.resize(op->packed.size() + nr * nc);
        };
        if (shared && nc <= kPackMaxCols && nr >= kPackMinRows) {
            b.kind = kColumns;
            reserve_pack(true);
        } else if (x_s[i] == 1 && (shared || a_cs[i] == 1)) {
            b.kind = kRows;
            if (a_cs[i] != 1) reserve_pack(false);
            if (shared && nr >= kSparseMinRows && nc >= kSparseMinCols) {
                b.sparse = static_cast<int64_t>(op->packed.size());
                op->packed.resize(op->packed.size() + nc * sparse_rows(nr), T(0));
            }
        }
        b.shared = shared;
        const int64_t id = static_cast<int64_t>(op->blocks.size());
        op->blocks.push_back(b);
        // A block of little work joins the job before it when that job is of
        // such blocks too (up to kBatchWork in all; a row batch takes only
        // blocks like its first).  Other blocks get jobs of about kJobRows rows
        // (at least 4 K multiply-adds); sparse-input blocks are one job (the
        // nonzeros are listed once for all rows).
        const int64_t trial_work = nr * nc * buf.n_trials;
        if (b.sparse < 0 && trial_work <= kBatchWork) {
            const bool small_rows = b.kind == kRows && nr < kBatchMaxRows;
            if (batch_work >= 0 && batch_work + trial_work <= kBatchWork &&
                op->jobs.back().row_batch == small_rows &&
                (!small_rows || (op->blocks[op->jobs.back().b0].cols == nc &&
                                 op->blocks[op->jobs.back().b0].shared == shared))) {
                op->jobs.back().b1 = id + 1;
                batch_work += trial_work;
            } else {
                op->jobs.push_back({id, id + 1, 0, nr, small_rows, false});
                batch_work = trial_work;
            }
            continue;
        }
        batch_work = -1;
        const int64_t step =
            b.sparse >= 0 ? nr : std::max<int64_t>(kJobRows, (4096 + nc - 1) / nc);
        const bool wide = b.sparse >= 0 ||
                          (buf.n_trials >= kWideMinTrials &&
                           ((b.kind == kColumns && nc >= kWideMinCols) ||
                            (b.kind == kRows && shared && nr >= kBatchMaxRows &&
                             nc >= kWideMinRowsCols)));
        for (int64_t r0 = 0; r0 < nr; r0 += step)
            op->jobs.push_back({id, id + 1, r0, std::min(nr, r0 + step), false, wide});
    }
    // a vector of padding: the columns kernel's last vector of rows may read past A^T
    op->packed.resize(op->packed.size() + kPackPad, T(0));
    op->refresh(buf, true);
    return op;
}

// Y += A @ X with A in CSR form (data held by the instruction: constant in a
// run; training and load_params replace it between runs, table "data").
template <typename T>
struct SparseDotInc : Instr<T> {
    bool splits_by_trial() const override { return true; }
    std::vector<int64_t> indptr, indices;
    std::vector<T> data;
    int64_t x = 0, x_s = 1, y = 0, y_s = 1;
    void set_table(const std::string& name, std::vector<double> values) override {
        if (name != "data") return Instr<T>::set_table(name, std::move(values));
        if (values.size() != data.size())
            throw std::invalid_argument("sparse_dot_inc: data of " +
                                        std::to_string(values.size()) + " values for " +
                                        std::to_string(data.size()) + " nonzeros");
        data = to_scalar_vector<T>(values);
    }
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
