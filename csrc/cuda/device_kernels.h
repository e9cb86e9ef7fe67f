// Kernel bodies of the device program, written once for the GPU and for the
// host emulator (see device_program.h).
//
// Every kernel is a functor with `NC_HD void operator()(int64_t i) const`: the
// work of logical thread i.  The CUDA executor runs it in a grid-stride loop;
// the emulator calls it for every i on the host (in reverse order, so that a
// dependency between threads shows up as a wrong result).  The tiled mat-vec
// is written as phases separated by block barriers (dot_* below), which both
// executors run in the same order.
//
// Before including this header a translation unit defines NC_DEV_NS (the
// namespace of its executor, so the GPU and emulator builds never share a
// symbol) and may set NC_DEV_CHECKED to 1 to bounds-check every pool access
// (host emulator only).
#pragma once
#include <cstdint>

#include "../common/host_device.h"
#include "../kernels/conv.h"
#include "../kernels/learning.h"
#include "../kernels/linear_filter.h"
#include "../kernels/neurons.h"
#include "../kernels/process_table.h"

#ifndef NC_DEV_NS
#error "define NC_DEV_NS before including device_kernels.h"
#endif
#ifndef NC_DEV_CHECKED
#define NC_DEV_CHECKED 0
#endif
#if NC_DEV_CHECKED
#include <stdexcept>
#include <string>
#endif

namespace nc {
namespace NC_DEV_NS {

// The device copies of the float and int pools: [shared | trial 0 | trial 1 ...].
template <typename T>
struct DPools {
    T* f = nullptr;
    int64_t f_shared = 0, f_state = 0;
    int64_t* i = nullptr;
    int64_t i_shared = 0, i_state = 0;
    int n_trials = 1;

    NC_HD T* fat(int64_t a, int t) const {
#if NC_DEV_CHECKED
        if (a < 0 || a >= f_shared + f_state || t < 0 || t >= n_trials)
            throw std::out_of_range("emulated device: float address " + std::to_string(a) +
                                    " trial " + std::to_string(t) + " out of range");
#endif
        return f + (a < f_shared ? a : a + static_cast<int64_t>(t) * f_state);
    }
    NC_HD int64_t* iat(int64_t a, int t) const {
#if NC_DEV_CHECKED
        if (a < 0 || a >= i_shared + i_state || t < 0 || t >= n_trials)
            throw std::out_of_range("emulated device: int address " + std::to_string(a) +
                                    " out of range");
#endif
        return i + (a < i_shared ? a : a + static_cast<int64_t>(t) * i_state);
    }
};

// idx = quot * n + rem (idx >= 0, n > 0), by a 32-bit division when both fit:
// on a GPU a 64-bit division costs several times more, and most kernels split
// their thread index into (element, trial) this way.
struct QuotRem {
    int64_t quot, rem;
};
NC_HD QuotRem divide(int64_t idx, int64_t n) {
    if (static_cast<uint64_t>(idx) <= 0xffffffffu && static_cast<uint64_t>(n) <= 0xffffffffu) {
        const uint32_t i = static_cast<uint32_t>(idx), m = static_cast<uint32_t>(n), q = i / m;
        return {q, i - q * m};
    }
    return {idx / n, idx % n};
}

// An address array: p[k], or base + k when the addresses are consecutive
// (p == nullptr), which saves reading them every step.
struct Addr {
    const int64_t* p = nullptr;
    int64_t base = 0;
    NC_HD int64_t operator[](int64_t k) const { return p ? p[k] : base + k; }
};

// Per-run values the captured graphs read from device memory, so that a graph
// stays valid from one run to the next (only this block is rewritten).
template <typename T>
struct RunCtrl {
    int64_t step_base = 0;                  // run step of the graph's first step
    int64_t n_steps = 0;                    // steps of this run
    const int32_t* probe_sample = nullptr;  // (n_steps, n_probes): sample index, or -1
    T* const* probe_out = nullptr;          // per probe: (trials, n_samples, size)
    const int64_t* probe_samples = nullptr; // per probe: n_samples
    const T* const* feed_data = nullptr;    // per feed: (trials, n_steps, size)
};

// The run step of step j of a graph: ctrl->step_base + j.
template <typename T>
struct StepRef {
    const RunCtrl<T>* ctrl = nullptr;
    int64_t j = 0;
    NC_HD int64_t get() const { return ctrl->step_base + j; }
};

// --- element-wise batches: time_update, reset, copy, copy_runs, elementwise_inc ---
//
// A batch is a list of items, one per written address w[u] (unique within the
// batch), each with a list of terms (CSR: terms term0[u] .. term0[u+1]):
//   SET:  *w = last term          INC:  *w = *w + term + term ...  (in order)
//   SUM:  *w = term + term ...    (a SET followed by INCs of the same address,
//         merged from consecutive instructions: the same additions in order)
//   TIME: step = ++*i_pool[ta];  *w = step * dt
// A term is a constant, a value *ta, or a product *ta * *tb; flags on its
// kind add a zero to the first operand (kZeroA: (0 + *ta) * *tb) or to the
// term (kZeroOut: 0 + term), as when an earlier instruction reset a value and
// incremented it once (HostBatch::forward passes such values on; 0 + x is
// x but for the sign of a zero).  No item reads an
// address another item of the batch writes, so items run in parallel.  When an
// instruction alone breaks that (a copy whose sources overlap its
// destinations), it runs as a gather of all terms into scratch, then a scatter.
enum BatchMode : int32_t { kSet = 0, kInc = 1, kTime = 2, kSum = 3 };
enum TermKind : int32_t { kConst = 0, kValue = 1, kProduct = 2, kStep = 3 };
constexpr int32_t kTermBase = 15, kZeroA = 16, kZeroOut = 32;  // kind = base | flags

template <typename T>
struct BatchArrays {
    int64_t n = 0;        // items
    int64_t n_terms = 0;  // terms
    const int64_t* w = nullptr;
    const int32_t* mode = nullptr;
    const int64_t* term0 = nullptr;  // n + 1
    const int32_t* kind = nullptr;
    const int64_t* ta = nullptr;
    const int64_t* tb = nullptr;
    const T* value = nullptr;
};

template <typename T>
NC_HD T batch_term(const DPools<T>& p, const BatchArrays<T>& b, int64_t j, int t) {
    const int32_t k = b.kind[j];
    T v;
    switch (k & kTermBase) {
        case kConst: v = b.value[j]; break;
        case kValue:
        case kProduct: {
            v = *p.fat(b.ta[j], t);
            if (k & kZeroA) v = T(0) + v;
            if ((k & kTermBase) == kProduct) v = v * *p.fat(b.tb[j], t);
            break;
        }
        default: return T(0);
    }
    return (k & kZeroOut) ? T(0) + v : v;
}

// One launch over (item, trial); scratch == nullptr: terms are evaluated here,
// else read from scratch[t * n_terms + j] (filled by BatchGather).
template <typename T>
struct BatchApply {
    DPools<T> p;
    BatchArrays<T> b;
    const T* scratch = nullptr;
    double dt = 0.001;
    NC_HD void operator()(int64_t idx) const {
        const QuotRem qr = divide(idx, b.n);
        const int64_t u = qr.rem;
        const int t = static_cast<int>(qr.quot);
        const int64_t j0 = b.term0[u], j1 = b.term0[u + 1];
        T* d = p.fat(b.w[u], t);
        auto term = [&](int64_t j) {
            return scratch ? scratch[static_cast<int64_t>(t) * b.n_terms + j]
                           : batch_term(p, b, j, t);
        };
        if (b.mode[u] == kTime) {
            int64_t* step = p.iat(b.ta[j0], t);
            *step += 1;
            *d = static_cast<T>(static_cast<double>(*step) * dt);
        } else if (b.mode[u] == kSet) {
            if (j1 > j0) *d = term(j1 - 1);
        } else {
            const bool sum = b.mode[u] == kSum;
            T acc = sum ? term(j0) : *d;
            for (int64_t j = sum ? j0 + 1 : j0; j < j1; ++j) acc = acc + term(j);
            *d = acc;
        }
    }
};

template <typename T>
struct BatchGather {
    DPools<T> p;
    BatchArrays<T> b;
    T* scratch = nullptr;
    NC_HD void operator()(int64_t idx) const {
        const QuotRem qr = divide(idx, b.n_terms);
        const int64_t j = qr.rem;
        const int t = static_cast<int>(qr.quot);
        scratch[idx] = b.kind[j] == kStep ? T(0) : batch_term(p, b, j, t);
    }
};

// --- feeds and probes -------------------------------------------------------

// Writes run-time data: element e (of feed fid[e], its element k[e]) at addr[e].
template <typename T>
struct FeedApply {
    DPools<T> p;
    StepRef<T> step;
    int64_t n = 0;
    Addr addr;
    const int64_t* fid = nullptr;
    const int64_t* k = nullptr;
    const int64_t* size = nullptr;  // per feed
    NC_HD void operator()(int64_t idx) const {
        const QuotRem qr = divide(idx, n);
        const int64_t e = qr.rem;
        const int t = static_cast<int>(qr.quot);
        const int64_t f = fid[e], s = step.get();
        const T* data = step.ctrl->feed_data[f];
        *p.fat(addr[e], t) = data[(static_cast<int64_t>(t) * step.ctrl->n_steps + s) * size[f] + k[e]];
    }
};

// Copies probed elements into the probe buffers on steps whose sample index >= 0.
template <typename T>
struct ProbeGather {
    DPools<T> p;
    StepRef<T> step;
    int64_t n = 0, n_probes = 0;
    Addr addr;
    const int64_t* pid = nullptr;
    const int64_t* k = nullptr;
    const int64_t* size = nullptr;  // per probe
    NC_HD void operator()(int64_t idx) const {
        const QuotRem qr = divide(idx, n);
        const int64_t e = qr.rem;
        const int t = static_cast<int>(qr.quot);
        const int64_t q = pid[e];
        const int32_t sample = step.ctrl->probe_sample[step.get() * n_probes + q];
        if (sample < 0) return;
        T* out = step.ctrl->probe_out[q];
        const int64_t n_samples = step.ctrl->probe_samples[q];
        out[(static_cast<int64_t>(t) * n_samples + sample) * size[q] + k[e]] = *p.fat(addr[e], t);
    }
};

// ctrl->step_base += steps (one thread, at the end of every graph).
template <typename T>
struct Advance {
    RunCtrl<T>* ctrl = nullptr;
    int64_t steps = 1;
    NC_HD void operator()(int64_t) const { ctrl->step_base += steps; }
};

// --- neurons ----------------------------------------------------------------
//
// Device models mirror csrc/cpu/instr_neurons.cpp: the same operand names, the
// same shared math.  `s` holds the neuron's state values (written back after
// the step), `q` its parameters; `aux` is the per-neuron constant the host
// computed with the same function the CPU kernels use.
namespace models {

struct RectifiedLinear {
    static constexpr int NS = 0, NP = 1;
    static constexpr bool has_aux = false;
    template <typename T>
    NC_HD static T step(T J, T*, const T* q, T, T) {
        return neurons::rectified_linear(J, q[0]);
    }
};
struct SpikingRectifiedLinear {
    static constexpr int NS = 1, NP = 1;
    static constexpr bool has_aux = false;
    template <typename T>
    NC_HD static T step(T J, T* s, const T* q, T dt, T) {
        return neurons::spiking_rectified_linear(J, s[0], dt, q[0]);
    }
};
struct Sigmoid {
    static constexpr int NS = 0, NP = 1;
    static constexpr bool has_aux = false;
    template <typename T>
    NC_HD static T step(T J, T*, const T* q, T, T) {
        return neurons::sigmoid(J, q[0]);
    }
};
struct Tanh {
    static constexpr int NS = 0, NP = 1;
    static constexpr bool has_aux = false;
    template <typename T>
    NC_HD static T step(T J, T*, const T* q, T, T) {
        return neurons::tanh_rate(J, q[0]);
    }
};
struct LIFRate {
    static constexpr int NS = 0, NP = 3;
    static constexpr bool has_aux = false;
    template <typename T>
    NC_HD static T step(T J, T*, const T* q, T, T) {
        return neurons::lif_rate(J, q[0], q[1], q[2]);
    }
};
struct LeakyReLU {
    static constexpr int NS = 0, NP = 2;
    static constexpr bool has_aux = false;
    template <typename T>
    NC_HD static T step(T J, T*, const T* q, T, T) {
        return neurons::leaky_relu(J, q[0], q[1]);
    }
};
struct SpikingLeakyReLU {
    static constexpr int NS = 1, NP = 2;
    static constexpr bool has_aux = false;
    template <typename T>
    NC_HD static T step(T J, T* s, const T* q, T dt, T) {
        return neurons::spiking_leaky_relu(J, s[0], dt, q[0], q[1]);
    }
};
struct SoftLIFRate {
    static constexpr int NS = 0, NP = 4;
    static constexpr bool has_aux = false;
    template <typename T>
    NC_HD static T step(T J, T*, const T* q, T, T) {
        return neurons::soft_lif_rate(J, q[0], q[1], q[2], q[3]);
    }
};
struct LIF {
    static constexpr int NS = 2, NP = 4;
    static constexpr bool has_aux = true;
    template <typename T>
    NC_HD static T aux(const T* q, T dt) {
        return neurons::lif_full_step_decay(dt, q[0]);
    }
    template <typename T>
    NC_HD static T step(T J, T* s, const T* q, T dt, T decay) {
        return neurons::lif_spiking(J, s[0], s[1], dt, q[0], q[1], q[2], q[3], decay);
    }
};
struct AdaptiveLIFRate {
    static constexpr int NS = 1, NP = 5;
    static constexpr bool has_aux = false;
    template <typename T>
    NC_HD static T step(T J, T* s, const T* q, T dt, T) {
        return neurons::adaptive_lif_rate(J, s[0], dt, q[0], q[1], q[2], q[3], q[4]);
    }
};
struct AdaptiveLIF {
    static constexpr int NS = 3, NP = 6;
    static constexpr bool has_aux = true;
    template <typename T>
    NC_HD static T aux(const T* q, T dt) {
        return neurons::lif_full_step_decay(dt, q[2]);
    }
    template <typename T>
    NC_HD static T step(T J, T* s, const T* q, T dt, T decay) {
        return neurons::adaptive_lif(J, s[0], s[1], s[2], dt, q[0], q[1], q[2], q[3], q[4], q[5],
                                     decay);
    }
};
struct Izhikevich {
    static constexpr int NS = 2, NP = 5;
    static constexpr bool has_aux = false;
    template <typename T>
    NC_HD static T step(T J, T* s, const T* q, T dt, T) {
        return neurons::izhikevich(J, s[0], s[1], dt, q[0], q[1], q[2], q[3], q[4]);
    }
};
struct RegularSpiking {
    static constexpr int NS = 1, NP = 1;
    static constexpr bool has_aux = false;
    template <typename T>
    NC_HD static T step(T J, T* s, const T* q, T dt, T) {
        return neurons::regular_spikes(J, s[0], dt, q[0]);
    }
};

}  // namespace models

constexpr int kMaxNeuronStates = 3;
constexpr int kMaxNeuronParams = 6;

// One thread per (neuron, trial): all merged populations of one type.
template <typename T, typename M>
struct NeuronStep {
    DPools<T> p;
    int64_t n = 0;
    Addr J, out;
    Addr state[kMaxNeuronStates];
    const T* param[kMaxNeuronParams] = {};
    const T* aux = nullptr;
    T dt = T(0.001);
    NC_HD void operator()(int64_t idx) const {
        const QuotRem qr = divide(idx, n);
        element(qr.rem, static_cast<int>(qr.quot));
    }
    // Neuron k of trial t (also the epilogue of a fused mat-vec, NeuronEpilogue).
    NC_HD void element(int64_t k, int t) const {
        T s[M::NS > 0 ? M::NS : 1];
        T q[M::NP > 0 ? M::NP : 1];
        T* sp[M::NS > 0 ? M::NS : 1];
        for (int j = 0; j < M::NS; ++j) {
            sp[j] = p.fat(state[j][k], t);
            s[j] = *sp[j];
        }
        for (int j = 0; j < M::NP; ++j) q[j] = param[j][k];
        const T a = aux ? aux[k] : T(0);
        const T y = M::template step<T>(*p.fat(J[k], t), s, q, dt, a);
        for (int j = 0; j < M::NS; ++j) *sp[j] = s[j];
        *p.fat(out[k], t) = y;
    }
};

// --- SparseDotInc (CSR, constant data) ---------------------------------------
template <typename T>
struct SparseDot {
    DPools<T> p;
    int64_t rows = 0;
    const int64_t* indptr = nullptr;
    const int64_t* indices = nullptr;
    const T* data = nullptr;
    int64_t x = 0, x_s = 1, y = 0, y_s = 1;
    NC_HD void operator()(int64_t idx) const {
        const QuotRem qr = divide(idx, rows);
        const int64_t r = qr.rem;
        const int t = static_cast<int>(qr.quot);
        const T* X = p.fat(x, t);
        T acc = 0;
        for (int64_t k = indptr[r]; k < indptr[r + 1]; ++k) acc += data[k] * X[indices[k] * x_s];
        T* Y = p.fat(y, t) + r * y_s;
        *Y += acc;
    }
};

// --- ConvInc / ConvTransposeInc (csrc/kernels/conv.h) ------------------------
// One thread per (trial, output position, filter); filters vary fastest, so a
// warp reads consecutive weights and shares its input values.
template <typename T>
struct ConvStep {
    DPools<T> p;
    conv::Geometry g;
    int64_t rows = 0, x = 0, y = 0, w = 0;
    bool set = false;  // Y = the sum (a reset fused in), not Y += it
    NC_HD void operator()(int64_t idx) const {
        const QuotRem qr = divide(idx, g.filters), qr2 = divide(qr.quot, rows);
        const int64_t f = qr.rem, o = qr2.rem;
        const int t = static_cast<int>(qr2.quot);
        T acc = 0;
        conv::accumulate(g, p.fat(x, t), p.fat(w, t), o, f, f + 1, &acc);
        T* Y = p.fat(y, t) + o * g.y_ps + f * g.y_cs;
        *Y = set ? acc : *Y + acc;
    }
};

// With weights shared by all trials: one thread per (trial group of TT, output
// position, group of F filters), filter groups fastest (conv::accumulate_tile:
// a weight serves TT trials, an input value F filters).  Trials past the last
// compute on the last one's input and are not written.
template <typename T, int F, int TT>
struct ConvTile {
    ConvStep<T> k;  // the operands
    int64_t n_fg = 0;
    NC_HD void operator()(int64_t idx) const {
        const DPools<T>& p = k.p;
        const conv::Geometry& g = k.g;
        const QuotRem qr = divide(idx, n_fg), qr2 = divide(qr.quot, k.rows);
        const int64_t fg = qr.rem, o = qr2.rem;
        const int t0 = static_cast<int>(qr2.quot) * TT, last = p.n_trials - 1;
        const T* X[TT];
        T acc[F * TT];
        NC_UNROLL
        for (int tt = 0; tt < TT; ++tt) X[tt] = p.fat(k.x, t0 + tt < last ? t0 + tt : last);
        NC_UNROLL
        for (int i = 0; i < F * TT; ++i) acc[i] = T(0);
        conv::accumulate_tile<T, F, TT>(g, X, p.fat(k.w, 0), o, fg * F, acc);
        NC_UNROLL
        for (int tt = 0; tt < TT; ++tt) {
            if (t0 + tt > last) break;
            T* Y = p.fat(k.y, t0 + tt) + o * g.y_ps + fg * F * g.y_cs;
            NC_UNROLL
            for (int j = 0; j < F; ++j) {
                T& y = Y[j * g.y_cs];
                y = k.set ? acc[j * TT + tt] : y + acc[j * TT + tt];
            }
        }
    }
};

// --- SimRLS (csrc/kernels/learning.h): three launches per step -------------------
// 1. Pr = P r, one thread per (trial, row); 2. the gain, one thread per trial;
// 3. P's rank-one update and delta, one thread per (trial, element).
template <typename T>
struct RlsViews {
    DPools<T> p;
    int64_t n = 0, m = 0;
    int64_t P = 0, P_rs = 0, P_cs = 0, r = 0, r_s = 0, e = 0, e_s = 0;
    int64_t d = 0, d_rs = 0, d_cs = 0;
    T* pr = nullptr;    // (trials, n) scratch
    T* gain = nullptr;  // (trials) scratch
};

template <typename T>
struct RlsPr {
    RlsViews<T> v;
    NC_HD void operator()(int64_t idx) const {
        const QuotRem qr = divide(idx, v.n);
        const int64_t i = qr.rem;
        const int t = static_cast<int>(qr.quot);
        v.pr[t * v.n + i] =
            learning::rls_dot(v.n, v.p.fat(v.P, t) + i * v.P_rs, v.P_cs, v.p.fat(v.r, t), v.r_s);
    }
};

template <typename T>
struct RlsGain {
    RlsViews<T> v;
    NC_HD void operator()(int64_t t) const {
        const int trial = static_cast<int>(t);
        v.gain[t] = learning::rls_gain(
            learning::rls_dot(v.n, v.p.fat(v.r, trial), v.r_s, v.pr + t * v.n, int64_t(1)));
    }
};

template <typename T>
struct RlsUpdate {
    RlsViews<T> v;
    NC_HD void operator()(int64_t idx) const {
        const int64_t per_trial = v.n * (v.n + v.m);
        const QuotRem qr = divide(idx, per_trial);
        const int t = static_cast<int>(qr.quot);
        const int64_t k = qr.rem;
        const T* pr = v.pr + t * v.n;
        const T g = v.gain[t];
        if (k < v.n * v.n) {
            const int64_t i = k / v.n, j = k % v.n;
            T* x = v.p.fat(v.P, t) + i * v.P_rs + j * v.P_cs;
            *x = learning::rls_p(*x, pr[i], pr[j], g);
        } else {
            const int64_t row = (k - v.n * v.n) / v.n, j = (k - v.n * v.n) % v.n;
            const T e = v.p.fat(v.e, t)[row * v.e_s];
            v.p.fat(v.d, t)[row * v.d_rs + j * v.d_cs] = learning::rls_delta(e, g, pr[j]);
        }
    }
};

// --- linear filters ------------------------------------------------------------
// `serial`: one thread per trial walks every element in order (used when two
// elements write the same output, which must then accumulate in order).
template <typename T>
struct LtiElementwise {
    DPools<T> p;
    int64_t n = 0;
    bool serial = false;
    Addr u, y;
    const int64_t* x = nullptr;
    const int64_t* form = nullptr;
    const int64_t* inc = nullptr;
    const T* a = nullptr;
    const T* b = nullptr;
    const double* a_wide = nullptr;
    const double* b_wide = nullptr;
    NC_HD void element(int64_t k, int t) const {
        const T uk = *p.fat(u[k], t);
        T yk;
        if (form[k] == filters::kNoX)
            yk = filters::no_state(b[k], uk);
        else if (form[k] == filters::kOneX)
            yk = filters::one_state(*p.fat(x[k], t), a[k], b[k], uk);
        else
            yk = filters::one_state_scalar(*p.fat(x[k], t), a_wide[k], b_wide[k], uk);
        filters::write_output(*p.fat(y[k], t), yk, inc[k] != 0);
    }
    NC_HD void operator()(int64_t idx) const {
        if (serial) {
            for (int64_t k = 0; k < n; ++k) element(k, static_cast<int>(idx));
        } else {
            const QuotRem qr = divide(idx, n);
            element(qr.rem, static_cast<int>(qr.quot));
        }
    }
};

template <typename T>
struct LtiStateSpace {
    DPools<T> p;
    int64_t n_elem = 0, max_n = 1;
    bool serial = false;
    // per block
    const int64_t *n = nullptr, *m = nullptr, *x = nullptr, *general = nullptr,
                  *inc = nullptr, *elem0 = nullptr, *a0 = nullptr, *bc0 = nullptr;
    const double *A = nullptr, *B = nullptr, *C = nullptr, *D = nullptr;
    // per element
    const int64_t* block = nullptr;
    Addr u, y;
    double* scratch = nullptr;  // (n_trials * n_elem, max_n), or (n_trials, max_n) when serial
    NC_HD void element(int64_t e, int t, double* tmp) const {
        const int64_t j = block[e], k = e - elem0[j];
        T* xj = p.fat(x[j], t);
        const double yk = filters::state_space(n[j], A + a0[j], B + bc0[j], C + bc0[j], D[j],
                                               general[j] != 0, xj + k, m[j], *p.fat(u[e], t),
                                               tmp);
        filters::write_output(*p.fat(y[e], t), yk, inc[j] != 0);
    }
    NC_HD void operator()(int64_t idx) const {
        if (serial) {
            double* tmp = scratch + idx * max_n;
            for (int64_t e = 0; e < n_elem; ++e) element(e, static_cast<int>(idx), tmp);
        } else {
            const QuotRem qr = divide(idx, n_elem);
            element(qr.rem, static_cast<int>(qr.quot), scratch + idx * max_n);
        }
    }
};

// --- process tables (WhiteSignal, WhiteNoise, PresentInput, Piecewise) --------
// The table's layout changes between runs; it is read through this block.
struct TableState {
    const double* table = nullptr;  // laid out as processes::table_layout says
    int64_t per_trial = 0;
    int64_t step_rows = 0;
    const double* rows = nullptr;   // indexed operators' rows per run step
};

template <typename T>
struct ProcessTable {
    DPools<T> p;
    StepRef<T> step;
    int64_t n_elem = 0;
    bool serial = false;
    double dt = 0.001;
    int64_t time = 0;
    const TableState* state = nullptr;
    const int64_t* offset = nullptr;  // per op (trial 0's block, or the shared one)
    const int64_t *m = nullptr, *period = nullptr, *inc = nullptr, *shared = nullptr;
    const int64_t* elem0 = nullptr;
    const int64_t* op = nullptr;  // per element
    const int64_t* slot = nullptr;  // per op: its column of state->rows, or -1
    int64_t n_indexed = 0;
    Addr y;
    NC_HD void element(int64_t e, int t) const {
        const int64_t j = op[e], k = e - elem0[j];
        const double now = static_cast<double>(*p.fat(time, t));
        const int64_t row = processes::table_row(period[j], now, dt, step.get(), state->rows,
                                                 n_indexed, slot[j]);
        const int64_t trial_offset = shared[j] ? 0 : t * state->per_trial;
        const double* src = state->table + offset[j] + trial_offset + row * m[j];
        filters::write_output(*p.fat(y[e], t), src[k], inc[j] != 0);
    }
    NC_HD void operator()(int64_t idx) const {
        if (serial) {
            for (int64_t e = 0; e < n_elem; ++e) element(e, static_cast<int>(idx));
        } else {
            const QuotRem qr = divide(idx, n_elem);
            element(qr.rem, static_cast<int>(qr.quot));
        }
    }
};

// --- learning rules ----------------------------------------------------------
enum Rule : int { kPES = 0, kBCM = 1, kOja = 2, kVoja = 3 };

// One thread per (delta element, trial).  Blocks are found by binary search in
// the prefix sums of their sizes (work0, nb + 1 entries).
template <typename T, int R>
struct Learning {
    DPools<T> p;
    int64_t work = 0, nb = 0;
    const int64_t *rows = nullptr, *cols = nullptr, *work0 = nullptr, *row0 = nullptr;
    const int64_t *delta = nullptr, *delta_rs = nullptr, *delta_cs = nullptr;
    const int64_t *pre = nullptr, *pre_s = nullptr;
    const int64_t *v1 = nullptr, *v1_s = nullptr;  // error (PES), post (others)
    const int64_t *v2 = nullptr, *v2_s = nullptr;  // theta (BCM)
    const int64_t *mat = nullptr, *mat_rs = nullptr, *mat_cs = nullptr;  // weights / encoders
    const int64_t* signal = nullptr;  // Voja learning signal, per block
    const T* alpha = nullptr;         // per block, as the CPU kernel rounds it
    const T* coef = nullptr;          // per block: -beta (Oja)
    const T* scale = nullptr;         // per row of all blocks (Voja)
    bool inc = false;                 // delta += change (nengo_cuda/deferral.py)

    NC_HD void operator()(int64_t idx) const {
        const QuotRem qr = divide(idx, work);
        const int64_t e = qr.rem;
        const int t = static_cast<int>(qr.quot);
        int64_t lo = 0, hi = nb;  // largest b with work0[b] <= e
        while (hi - lo > 1) {
            const int64_t mid = (lo + hi) / 2;
            if (work0[mid] <= e) lo = mid; else hi = mid;
        }
        const int64_t b = lo, rem = e - work0[b], r = rem / cols[b], c = rem % cols[b];
        const T pre_c = p.fat(pre[b], t)[c * pre_s[b]];
        const T v1_r = p.fat(v1[b], t)[r * v1_s[b]];
        T d;
        if (R == kPES) {
            d = learning::outer_delta<T>(learning::pes_row<T>(alpha[b], v1_r), pre_c);
        } else if (R == kBCM) {
            const T theta = p.fat(v2[b], t)[r * v2_s[b]];
            d = learning::outer_delta<T>(learning::bcm_row<T>(alpha[b], v1_r, theta), pre_c);
        } else if (R == kOja) {
            const T w = p.fat(mat[b], t)[r * mat_rs[b] + c * mat_cs[b]];
            d = learning::oja_delta<T>(coef[b], w, learning::oja_row<T>(alpha[b], v1_r), pre_c);
        } else {
            const T enc = p.fat(mat[b], t)[r * mat_rs[b] + c * mat_cs[b]];
            const T gain = learning::voja_gain<T>(alpha[b], *p.fat(signal[b], t));
            d = learning::voja_delta<T>(gain, scale[row0[b] + r], v1_r, pre_c, enc);
        }
        T* y = p.fat(delta[b], t) + r * delta_rs[b] + c * delta_cs[b];
        *y = inc ? *y + d : d;  // (Oja, Voja: y may be the element w / enc read above)
    }
};

// --- DotInc: batched ragged mat-vec with the minibatch as a dimension ---------
//
// Y[r] = I[r] + sum_c A[r, c] X[c] (or Y[r] += ...) for every row r of every
// block and every trial.  Rows are dealt to *slots* of g consecutive threads
// (g a power of two <= 32, chosen per block from its columns, so a slot lies
// within one warp).  A tile is one thread block of kDotThreads threads: up to
// kDotThreads / g slots, rows of one or several blocks, for trials t0 .. t0 + TT.
// Lane l of a slot sums columns l, l + g, ... for all TT trials, so an element
// of a shared A is read once per TT trials.  X is read from global memory: the
// rows of a tile that share a block read the same X, which the L1 cache serves.
// The g partial sums are combined by a butterfly (xor) exchange, after which
// every lane holds every sum (IEEE addition commutes, so the lanes agree to the
// bit), and lane l writes trials l, l + g, ...
constexpr int kDotThreads = 128;

template <typename T>
struct DotParams {
    DPools<T> p;
    // per block
    const int64_t *cols = nullptr, *a = nullptr, *a_rs = nullptr, *a_cs = nullptr,
                  *x = nullptr, *x_s = nullptr, *y = nullptr, *y_s = nullptr;
    // per block: Y starts from I[r * init_s] when init >= 0 (fusion.py); null: never
    const int64_t *init = nullptr, *init_s = nullptr;
    // per slot: its block and row
    const int64_t *slot_block = nullptr, *slot_row = nullptr;
    // per tile: first slot, number of slots, first trial, lanes per slot
    const int64_t* tile_slot0 = nullptr;
    const int32_t *tile_nslot = nullptr, *tile_t0 = nullptr, *tile_g = nullptr;
    // dense tiles (dense_* below): rows per tile (0: lane tiles, dot_* above)
    // and trials per thread
    int dense_rt = 0, dense_tpt = 0;
};

// The partial sums of thread `tid` of `tile` (zero for a thread without a row).
template <typename T, int TT>
NC_HD void dot_partial(const DotParams<T>& q, int64_t tile, int tid, T* acc) {
    NC_UNROLL
    for (int tt = 0; tt < TT; ++tt) acc[tt] = T(0);
    const int g = q.tile_g[tile];
    const int slot = tid / g, lane = tid % g;
    if (slot >= q.tile_nslot[tile]) return;
    const int64_t s = q.tile_slot0[tile] + slot;
    const int64_t b = q.slot_block[s], row = q.slot_row[s];
    const int64_t nc = q.cols[b], rs = q.a_rs[b], cs = q.a_cs[b], xs = q.x_s[b];
    const int t0 = q.tile_t0[tile], last = q.p.n_trials - 1;
    // trials past the last read the last one's X (valid memory); never written
    const T* X[TT];
    NC_UNROLL
    for (int tt = 0; tt < TT; ++tt) X[tt] = q.p.fat(q.x[b], t0 + tt < last ? t0 + tt : last);
    if (q.a[b] < q.p.f_shared) {  // one matrix for every trial: read each element once
        const T* A = q.p.fat(q.a[b], 0) + row * rs;
        NC_UNROLL4
        for (int64_t c = lane; c < nc; c += g) {
            const T av = A[c * cs];
            NC_UNROLL
            for (int tt = 0; tt < TT; ++tt) acc[tt] += av * X[tt][c * xs];
        }
    } else {  // per-trial matrices (e.g. learned weights)
        NC_UNROLL
        for (int tt = 0; tt < TT && t0 + tt <= last; ++tt) {
            const T* A = q.p.fat(q.a[b], t0 + tt) + row * rs;
            for (int64_t c = lane; c < nc; c += g) acc[tt] += A[c * cs] * X[tt][c * xs];
        }
    }
}

// What a tile does with each row and trial it has written: nothing, or
// (NeuronEpilogue, device_instrs.h) update the neuron whose input it is.
struct NoEpilogue {
    NC_HD void operator()(int64_t /*slot*/, int /*trial*/) const {}
};

// Writes the sums of thread `tid` (after the exchange): trials lane, lane + g,
// ...; then runs the epilogue on each (the same thread reads what it wrote).
template <typename T, int TT, class Epi>
NC_HD void dot_write(const DotParams<T>& q, int64_t tile, int tid, const T* acc, const Epi& epi) {
    const int g = q.tile_g[tile];
    const int slot = tid / g, lane = tid % g;
    if (slot >= q.tile_nslot[tile]) return;
    const int64_t s = q.tile_slot0[tile] + slot;
    const int64_t b = q.slot_block[s], row = q.slot_row[s];
    const int t0 = q.tile_t0[tile];
    const bool from_init = q.init && q.init[b] >= 0;
    NC_UNROLL
    for (int tt = 0; tt < TT; ++tt) {  // static indices keep acc in registers
        const int t = t0 + tt;
        if (tt % g != lane || t >= q.p.n_trials) continue;
        T* Y = q.p.fat(q.y[b], t) + row * q.y_s[b];
        if (from_init)
            *Y = q.p.fat(q.init[b], t)[row * q.init_s[b]] + acc[tt];
        else
            *Y += acc[tt];
        epi(s, t);
    }
}

// Mat-vec rows one thread each, as a phase (phases.h): small products of
// small models, which then share a launch with their neighbours.  Each sum is
// the tile's, to the bit: lane l's partial sum over columns l, l + g, ... in
// order (as dot_partial), then the butterfly's tree as lane 0 sees it (at m =
// g/2, ..., 1: v[l] + v[l + m]; every lane of the tile holds the same sum).
template <typename T>
NC_HD T dot_lane_sum(const DotParams<T>& q, int64_t b, int64_t row, int t, int lane, int g) {
    const int64_t nc = q.cols[b], cs = q.a_cs[b], xs = q.x_s[b];
    const T* A = q.p.fat(q.a[b], q.a[b] < q.p.f_shared ? 0 : t) + row * q.a_rs[b];
    const T* X = q.p.fat(q.x[b], t);
    T acc = T(0);
    for (int64_t c = lane; c < nc; c += g) acc += A[c * cs] * X[c * xs];
    return acc;
}

// v[l] = v[l] + v[l + M] for l < M, then for M/2, ..., 1 (static indices: v
// stays in registers)
template <typename T, int M>
NC_HD void dot_fold(T* v) {
    if constexpr (M > 0) {
        NC_UNROLL
        for (int l = 0; l < M; ++l) v[l] = v[l] + v[l + M];
        dot_fold<T, M / 2>(v);
    }
}

template <typename T, int G>
NC_HD T dot_tree_sum(const DotParams<T>& q, int64_t b, int64_t row, int t) {
    T v[G];
    NC_UNROLL
    for (int l = 0; l < G; ++l) v[l] = dot_lane_sum(q, b, row, t, l, G);
    dot_fold<T, G / 2>(v);
    return v[0];
}

// (rows of 32 lanes have more columns than a phase should sum serially, and
// 32 partial sums would take the phases kernel's registers)
constexpr int kDotRowsMaxG = 16;

template <typename T>
struct DotRows {
    DotParams<T> q;
    int64_t n_slots = 0;
    const int32_t* slot_g = nullptr;  // per slot: the lanes of its row in a tile
    NC_HD void operator()(int64_t idx) const {
        const QuotRem qr = divide(idx, n_slots);
        const int64_t s = qr.rem, b = q.slot_block[s], row = q.slot_row[s];
        const int t = static_cast<int>(qr.quot);
        T acc;
        switch (slot_g[s]) {
            case 1: acc = dot_tree_sum<T, 1>(q, b, row, t); break;
            case 2: acc = dot_tree_sum<T, 2>(q, b, row, t); break;
            case 4: acc = dot_tree_sum<T, 4>(q, b, row, t); break;
            case 8: acc = dot_tree_sum<T, 8>(q, b, row, t); break;
            default: acc = dot_tree_sum<T, 16>(q, b, row, t); break;  // (kDotRowsMaxG)
        }
        T* Y = q.p.fat(q.y[b], t) + row * q.y_s[b];
        if (q.init && q.init[b] >= 0)
            *Y = q.p.fat(q.init[b], t)[row * q.init_s[b]] + acc;
        else
            *Y += acc;
    }
};

// --- DotInc, dense tiles: weights shared by the trials, many trials -----------
//
// A dense tile is kDotThreads threads over RT = dense_rt consecutive rows of one
// block (slots tile_slot0 .. + tile_nslot) and TN = dense_trials(RT, TPT) trials
// from tile_t0, TPT = dense_tpt trials per thread (2, 4 or 8).  Chunks of kDenseCols columns of the rows of A and of the trials' X
// are staged in shared memory (read along the columns, coalesced; X stored by
// column, its trials contiguous), then thread tid sums row tid % RT for the
// TPT consecutive trials from (tid / RT) * TPT over the chunk's columns: per
// column one A value and vector loads of X (16 bytes, or 8 for two float32)
// for TPT multiply-adds.  So a
// tile reads each element of A and X it needs from global memory once, where
// the lane tiles above read X once per row and A once per TT trials.  Each sum
// runs over the columns in order from zero: DotRows' with one lane, to the bit.
constexpr int kDenseTrialsPerThreadMax = 8;
constexpr int kDenseRowsMin = 8, kDenseRowsMax = kDotThreads;
template <typename T>
constexpr int kDenseCols = sizeof(T) == 4 ? 32 : 16;
static_assert(kDotThreads % 32 == 0 && kDotThreads % 16 == 0, "staging: whole rows of columns");
template <typename T>
constexpr int kDenseStride = kDenseCols<T> + 1;  // A by row (odd: rows in different banks)
template <typename T>
constexpr int kDensePad = 16 / sizeof(T);  // X by column: 16-byte aligned columns

NC_HD int dense_trials(int rt, int tpt) { return tpt * kDotThreads / rt; }

// Shared memory of a tile of RT rows: A, then X from offset RT * kDenseStride.
template <typename T>
constexpr int dense_smem(int rt) {
    return rt * kDenseStride<T> +
           kDenseCols<T> * (kDenseTrialsPerThreadMax * kDotThreads / rt + kDensePad<T>);
}
template <typename T>
constexpr int kDenseSmem = dense_smem<T>(kDenseRowsMin) > dense_smem<T>(kDenseRowsMax)
                               ? dense_smem<T>(kDenseRowsMin)
                               : dense_smem<T>(kDenseRowsMax);

// The columns of the tile's chunk from column c0: at most kDenseCols.
template <typename T>
NC_HD int dense_chunk(const DotParams<T>& q, int64_t tile, int64_t c0) {
    const int64_t left = q.cols[q.slot_block[q.tile_slot0[tile]]] - c0;
    return static_cast<int>(left < kDenseCols<T> ? left : kDenseCols<T>);
}

// Thread tid's share of staging columns c0 .. c0 + kc - 1: the tile's rows of A
// at smem[i * kDenseStride + j] (zeros past its rows), then its trials' X at
// smem[RT * kDenseStride + j * (TN + kDensePad) + i] (zeros past the last
// trial).  Thread tid stages column tid % kDenseCols of every
// (kDotThreads / kDenseCols)-th row or trial: consecutive threads read
// consecutive columns.
template <typename T>
NC_HD void dense_stage(const DotParams<T>& q, int64_t tile, int64_t c0, int tid, T* smem) {
    constexpr int S = kDenseStride<T>, KC = kDenseCols<T>, step = kDotThreads / KC;
    const int rt = q.dense_rt, tn = dense_trials(rt, q.dense_tpt), kc = dense_chunk(q, tile, c0);
    const int j = tid % KC;
    if (j >= kc) return;
    const int64_t s0 = q.tile_slot0[tile];
    const int64_t b = q.slot_block[s0], row0 = q.slot_row[s0];
    const int nslot = q.tile_nslot[tile];
    const T* A = q.p.fat(q.a[b], 0) + (c0 + j) * q.a_cs[b];
    const int64_t rs = q.a_rs[b];
    for (int i = tid / KC; i < rt; i += step) smem[i * S + j] = i < nslot ? A[(row0 + i) * rs] : T(0);
    T* Xs = smem + rt * S + j * (tn + kDensePad<T>);
    const int64_t xj = (c0 + j) * q.x_s[b];
    const int t0 = q.tile_t0[tile], n_trials = q.p.n_trials;
    for (int i = tid / KC; i < tn; i += step)
        Xs[i] = t0 + i < n_trials ? q.p.fat(q.x[b], t0 + i)[xj] : T(0);
}

// x[0 .. N - 1] = p[0 .. N - 1], p aligned to 16 bytes (8 for two float32):
// vector loads on the GPU.
template <typename T, int N>
NC_HD void dense_load(const T* p, T* x) {
#if defined(__CUDA_ARCH__)
    if constexpr (sizeof(T) == 4 && N % 4 == 0) {
        NC_UNROLL
        for (int k = 0; k < N / 4; ++k) {
            const float4 u = reinterpret_cast<const float4*>(p)[k];
            x[4 * k] = u.x, x[4 * k + 1] = u.y, x[4 * k + 2] = u.z, x[4 * k + 3] = u.w;
        }
    } else if constexpr (sizeof(T) == 4 && N == 2) {
        const float2 u = reinterpret_cast<const float2*>(p)[0];
        x[0] = u.x, x[1] = u.y;
    } else if constexpr (sizeof(T) == 8 && N % 2 == 0) {
        NC_UNROLL
        for (int k = 0; k < N / 2; ++k) {
            const double2 u = reinterpret_cast<const double2*>(p)[k];
            x[2 * k] = u.x, x[2 * k + 1] = u.y;
        }
    } else {
        NC_UNROLL
        for (int k = 0; k < N; ++k) x[k] = p[k];
    }
#else
    for (int k = 0; k < N; ++k) x[k] = p[k];
#endif
}

// Thread tid's sums over the staged columns (see above).
template <typename T, int TPT>
NC_HD void dense_accumulate(const DotParams<T>& q, int64_t tile, int64_t c0, int tid,
                            const T* smem, T* acc) {
    constexpr int S = kDenseStride<T>;
    const int rt = q.dense_rt, kc = dense_chunk(q, tile, c0);
    const int tns = dense_trials(rt, TPT) + kDensePad<T>;
    const T* a = smem + (tid % rt) * S;
    const T* x = smem + rt * S + (tid / rt) * TPT;
    for (int j = 0; j < kc; ++j) {
        const T av = a[j];
        T xv[TPT];
        dense_load<T, TPT>(x + j * tns, xv);
        NC_UNROLL
        for (int k = 0; k < TPT; ++k) acc[k] += av * xv[k];
    }
}

// Writes thread tid's sums (Y = I + sum, or Y += sum), then runs the epilogue
// on each (slot, trial) written.
template <typename T, int TPT, class Epi>
NC_HD void dense_write(const DotParams<T>& q, int64_t tile, int tid, const T* acc,
                       const Epi& epi) {
    const int rt = q.dense_rt, i = tid % rt;
    if (i >= q.tile_nslot[tile]) return;
    const int64_t s = q.tile_slot0[tile] + i;
    const int64_t b = q.slot_block[s], row = q.slot_row[s];
    const bool from_init = q.init && q.init[b] >= 0;
    const int first = q.tile_t0[tile] + (tid / rt) * TPT;
    NC_UNROLL
    for (int k = 0; k < TPT; ++k) {  // (static indices keep acc in registers)
        const int t = first + k;
        if (t >= q.p.n_trials) continue;
        T* Y = q.p.fat(q.y[b], t) + row * q.y_s[b];
        if (from_init)
            *Y = q.p.fat(q.init[b], t)[row * q.init_s[b]] + acc[k];
        else
            *Y += acc[k];
        epi(s, t);
    }
}

}  // namespace NC_DEV_NS
}  // namespace nc
