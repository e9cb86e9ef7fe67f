// SimNeurons groups: one instruction per neuron type over all merged populations.
// Operands are per-neuron addresses; parameters are per-neuron arrays so that
// populations with different parameters merge into one group.
//
// Each neuron type is a small Model struct (see below): its instruction kind,
// the names of its state operands and parameters (looked up by name in the
// InstrSpec, so their order here only fixes the order `step` receives them in),
// and `step`, which calls the shared math in kernels/neurons.h for one neuron.
// `NeuronGroup<T, Model>` does the loading, checking and looping for all types.
#include <algorithm>
#include <array>
#include <cassert>
#include <cmath>
#include <type_traits>

#include "../kernels/neurons.h"
#include "parallel.h"
#include "program.h"
#include "segments.h"
#include "simd.h"

namespace nc {
namespace {

// Models may define `aux(params, dt)`: a per-neuron constant derived from the
// parameters and dt (e.g. LIF's full-step decay), computed once, not every step.
template <typename M, typename = void>
struct has_aux : std::false_type {};
template <typename M>
struct has_aux<M, std::void_t<decltype(&M::template aux<float>)>> : std::true_type {};

// Models may define `run_contiguous`: the update of a run of neurons whose
// operands are consecutive in memory (see LIF), bit-identical to `step`.
template <typename M, typename = void>
struct has_contiguous : std::false_type {};
template <typename M>
struct has_contiguous<M, std::void_t<decltype(&M::template run_contiguous<float>)>>
    : std::true_type {};

// Models may set `kAvx2Loop`: their contiguous loop runs an AVX2 copy where
// the CPU has it (with_simd).  Only where measured faster: GCC vectorises
// these models' steps (floor and trunc need SSE4.1's roundps), while for
// models that call libm or branch the AVX2 copy was no faster or slower
// (Izhikevich 3.4 -> 4.5-5.2 ns per update, LeakyReLU 2.1 -> 2.8).
template <typename M, typename = void>
struct avx2_loop : std::false_type {};
template <typename M>
struct avx2_loop<M, std::void_t<decltype(M::kAvx2Loop)>> : std::bool_constant<M::kAvx2Loop> {};

// Neurons per segment: parallel jobs are (trial, segment) pairs.
constexpr int64_t kNeuronSegment = 512;
// A neuron update is worth this many element updates (see split_ways).
constexpr int64_t kNeuronWork = 8;

template <typename T, typename Model>
struct NeuronGroup : Instr<T> {
    bool splits_by_trial() const override { return true; }
    void prepare(double dt) override { update_aux(static_cast<T>(dt)); }
    static constexpr size_t kStates = Model::states.size();
    static constexpr size_t kParams = Model::params.size();

    std::vector<int64_t> J, out;
    std::array<std::vector<int64_t>, kStates> state;  // state[i][k]: neuron k's address
    std::array<std::vector<T>, kParams> param;        // param[i][k]: neuron k's value
    std::vector<Segment> segments;  // empty: gather every operand by address

    int64_t n() const { return static_cast<int64_t>(J.size()); }

    void load(const InstrSpec& spec, const Buffers<T>& buf) {
        J = spec.int_array("J");
        out = spec.int_array("out");
        check_same_length(spec, {"J", "out"});
        check_addresses(J, buf.f, spec.kind);
        check_addresses(out, buf.f, spec.kind);
        for (size_t i = 0; i < kStates; ++i) {
            state[i] = spec.int_array(Model::states[i]);
            check_length(spec, state[i].size(), "state", Model::states[i]);
            check_addresses(state[i], buf.f, spec.kind);
        }
        for (size_t i = 0; i < kParams; ++i) {
            const auto& p = spec.float_array(Model::params[i]);
            check_length(spec, p.size(), "parameter", Model::params[i]);
            param[i] = to_scalar_vector<T>(p);
        }
        std::vector<const std::vector<int64_t>*> operands{&J, &out};
        for (auto& s : state) operands.push_back(&s);
        segments = contiguous_segments(operands, buf.f.n_shared, kNeuronSegment);
        std::vector<const std::vector<T>*> params;
        for (auto& p : param) params.push_back(&p);
        mark_uniform(segments, params);
    }

    void check_length(const InstrSpec& spec, size_t size, const char* what,
                      const char* name) const {
        if (static_cast<int64_t>(size) != n())
            throw std::invalid_argument(spec.kind + ": " + what + " '" + name +
                                        "' has wrong length");
    }

    std::vector<T> aux;  // Model::aux per neuron, for aux_dt
    T aux_dt = T(-1);

    void update_aux(T dt) {
        if constexpr (has_aux<Model>::value) {
            if (aux_dt == dt) return;
            aux.resize(n());
            for (int64_t k = 0; k < n(); ++k) aux[k] = Model::template aux<T>(params_of(k), dt);
            aux_dt = dt;
        }
    }

    NC_INLINE std::array<T, kParams> params_of(int64_t k) const {
        std::array<T, kParams> p;
        for (size_t j = 0; j < kParams; ++j) p[j] = param[j][k];
        return p;
    }

    NC_INLINE T step_one(int64_t k, T J_k, const std::array<T*, kStates>& s, T dt) const {
        if constexpr (has_aux<Model>::value)
            return Model::step(J_k, s, params_of(k), dt, aux[k]);
        else
            return Model::step(J_k, s, params_of(k), dt);
    }

    // Neurons [seg.k0, seg.k0 + seg.len) of trial t, through plain pointers.
    void run_segment(const Buffers<T>& buf, const Segment& seg, int t, T dt) const {
        const int64_t k0 = seg.k0;
        const T* Jp = buf.f.at(J[k0], t);
        T* y = buf.f.at(out[k0], t);
        std::array<T*, kStates> s0;
        for (size_t j = 0; j < kStates; ++j) s0[j] = buf.f.at(state[j][k0], t);
        if constexpr (has_contiguous<Model>::value) {
            std::array<const T*, kParams> p;
            for (size_t j = 0; j < kParams; ++j) p[j] = param[j].data() + k0;
            Model::run_contiguous(seg.len, Jp, y, s0, p, aux.data() + k0, dt, seg.uniform);
        } else {
            auto loop = [&]() NC_LAMBDA {
                for (int64_t i = 0; i < seg.len; ++i) {
                    std::array<T*, kStates> s;
                    for (size_t j = 0; j < kStates; ++j) s[j] = s0[j] + i;
                    y[i] = step_one(k0 + i, Jp[i], s, dt);
                }
            };
            if constexpr (avx2_loop<Model>::value)
                with_simd(loop);
            else
                loop();
        }
    }

    void run(const Buffers<T>& buf, const StepInfo& info) override {
        const int64_t n = this->n();
        const T dt = static_cast<T>(info.dt);
        update_aux(dt);
        const int n_trials = buf.n_trials;
        const int ways = split_ways(kNeuronWork * n * n_trials);
        if (!segments.empty()) {
            const int64_t ns = static_cast<int64_t>(segments.size());
            parallel_for(ns * n_trials, ways, [&](int64_t j) {
                run_segment(buf, segments[j % ns], static_cast<int>(j / ns), dt);
            });
            return;
        }
        parallel_for(n * n_trials, ways, [&](int64_t j) {
            const int t = static_cast<int>(j / n);
            const int64_t k = j % n;
            std::array<T*, kStates> s;
            for (size_t i = 0; i < kStates; ++i) s[i] = buf.f.at(state[i][k], t);
            *buf.f.at(out[k], t) = step_one(k, *buf.f.at(J[k], t), s, dt);
        });
    }
};

template <typename T, typename Model>
std::unique_ptr<Instr<T>> make_neuron_group(const InstrSpec& spec, const Buffers<T>& buf) {
    auto op = std::make_unique<NeuronGroup<T, Model>>();
    op->load(spec, buf);
    return op;
}

// Registers Model::kind for float and double.
#define NC_REGISTER_NEURONS(MODEL)                                                   \
    static ::nc::RegisterInstr<float> nc_reg_f_##MODEL(MODEL::kind,                  \
                                                       &make_neuron_group<float, MODEL>); \
    static ::nc::RegisterInstr<double> nc_reg_d_##MODEL(MODEL::kind,                 \
                                                        &make_neuron_group<double, MODEL>)

template <size_t N>
using Names = std::array<const char*, N>;

// The models.  `s` holds pointers to this neuron's state (in `states` order),
// `p` its parameters (in `params` order); `step` returns the output.

// out = amplitude * max(0, J)
struct RectifiedLinear {
    static constexpr bool kAvx2Loop = true;
    static constexpr const char* kind = "neurons_rectified_linear";
    static constexpr Names<0> states{};
    static constexpr Names<1> params{"amplitude"};
    template <typename T>
    static T step(T J, const std::array<T*, 0>&, const std::array<T, 1>& p, T) {
        return neurons::rectified_linear(J, p[0]);
    }
};

// v += max(J, 0) * dt; out = floor(v) * amplitude / dt; v -= floor(v)
struct SpikingRectifiedLinear {
    static constexpr bool kAvx2Loop = true;  // floor / trunc vectorised: 2x
    static constexpr const char* kind = "neurons_spiking_rectified_linear";
    static constexpr Names<1> states{"voltage"};
    static constexpr Names<1> params{"amplitude"};
    template <typename T>
    static T step(T J, const std::array<T*, 1>& s, const std::array<T, 1>& p, T dt) {
        return neurons::spiking_rectified_linear(J, *s[0], dt, p[0]);
    }
};

// Rate neurons (no state) whose float32 step is one vector expression over
// consecutive neurons: Model::vec<B>(J, p, aux, k, bad) gives the outputs of
// neurons k .. k + W - 1 (aux: the model's per-neuron constants, if it has
// `aux`), with its transcendental functions in SimdF32Math's double lanes
// (within an ulp of libm's float functions, where libm's scalar calls are
// slow: log1pf 11 ns per neuron, tanhf 22).  Lanes that vec marks bad (outside
// a vector function's domain) and the last n % W neurons run Model::step.
template <int B>
using VecF = typename Simd<float, B>::V;
template <int B>
using MaskF = typename Simd<float, B>::M;

template <typename Model, typename T, size_t P>
T rate_at(const T* J, const std::array<const T*, P>& p, const T* aux, int64_t i, T dt) {
    std::array<T, P> q;
    for (size_t j = 0; j < P; ++j) q[j] = p[j][i];
    if constexpr (has_aux<Model>::value)
        return Model::template step<T>(J[i], {}, q, dt, aux[i]);
    else
        return Model::template step<T>(J[i], {}, q, dt);
}

template <int B, typename Model, size_t P>
NC_INLINE void rate_f32(int64_t n, const float* J, float* out,
                        const std::array<const float*, P>& p, const float* aux) {
    using S = Simd<float, B>;
    constexpr int W = S::W;
    int64_t k = 0;
    for (; k + W <= n; k += W) {
        typename S::M bad{};
        S::store(out + k, Model::template vec<B>(S::load(J + k), p, aux, k, bad));
        if (S::any(bad))
            for (int64_t i = k; i < k + W; ++i)
                if (bad[i - k]) out[i] = rate_at<Model>(J, p, aux, i, 0.0f);
    }
    // the rest in half vectors (then libm's scalar step below 4 neurons), so
    // that every width computes the same neurons in vector lanes
    if constexpr (B > 16) {
        std::array<const float*, P> q;
        for (size_t j = 0; j < P; ++j) q[j] = p[j] + k;
        rate_f32<B / 2, Model>(n - k, J + k, out + k, q, aux != nullptr ? aux + k : nullptr);
    } else {
        for (; k < n; ++k) out[k] = rate_at<Model>(J, p, aux, k, 0.0f);
    }
}

template <typename Model, size_t P>
NC_TARGET_AVX2 void rate_f32_avx2(int64_t n, const float* J, float* out,
                                  const std::array<const float*, P>& p, const float* aux) {
    rate_f32<32, Model>(n, J, out, p, aux);
}
template <typename Model, size_t P>
NC_TARGET_AVX512 void rate_f32_avx512(int64_t n, const float* J, float* out,
                                      const std::array<const float*, P>& p, const float* aux) {
    rate_f32<64, Model>(n, J, out, p, aux);
}

// Model::run_contiguous of such a model: float32 as above, float64 libm per
// neuron (bit for bit as Nengo).
template <typename Model, typename T, size_t P>
NC_INLINE void run_rate(int64_t n, const T* J, T* out, const std::array<const T*, P>& p,
                        const T* aux, T dt) {
    if constexpr (std::is_same_v<T, float>) {
        if (simd_level() >= kSimdAvx512)
            rate_f32_avx512<Model>(n, J, out, p, aux);
        else if (cpu_has_avx2())
            rate_f32_avx2<Model>(n, J, out, p, aux);
        else
            rate_f32<16, Model>(n, J, out, p, aux);
    } else {
        for (int64_t k = 0; k < n; ++k) out[k] = rate_at<Model>(J, p, aux, k, dt);
    }
}

// out = (1 / tau_ref) / (1 + exp(-J))
struct Sigmoid {
    static constexpr const char* kind = "neurons_sigmoid";
    static constexpr Names<0> states{};
    static constexpr Names<1> params{"tau_ref"};
    template <typename T>
    static T step(T J, const std::array<T*, 0>&, const std::array<T, 1>& p, T) {
        return neurons::sigmoid(J, p[0]);
    }
    template <int B>  // neurons::sigmoid's float operations, exp in double lanes
    static NC_INLINE VecF<B> vec(VecF<B> J, const std::array<const float*, 1>& p,
                                 const float*, int64_t k, MaskF<B>& bad) {
        using S = Simd<float, B>;
        const auto one = S::splat(1.0f);
        return (one / S::load(p[0] + k)) / (one + SimdF32Math<B>::exp(-J, bad));
    }
    template <typename T>
    static void run_contiguous(int64_t n, const T* J, T* out, const std::array<T*, 0>&,
                               const std::array<const T*, 1>& p, const T* aux, T dt,
                               bool) {
        run_rate<Sigmoid>(n, J, out, p, aux, dt);
    }
};

// out = (1 / tau_ref) * tanh(J)
struct Tanh {
    static constexpr const char* kind = "neurons_tanh";
    static constexpr Names<0> states{};
    static constexpr Names<1> params{"tau_ref"};
    template <typename T>
    static T step(T J, const std::array<T*, 0>&, const std::array<T, 1>& p, T) {
        return neurons::tanh_rate(J, p[0]);
    }
    template <int B>  // neurons::tanh_rate's float operations, tanh in double lanes
    static NC_INLINE VecF<B> vec(VecF<B> J, const std::array<const float*, 1>& p,
                                 const float*, int64_t k, MaskF<B>& bad) {
        using S = Simd<float, B>;
        return (S::splat(1.0f) / S::load(p[0] + k)) * SimdF32Math<B>::tanh(J, bad);
    }
    template <typename T>
    static void run_contiguous(int64_t n, const T* J, T* out, const std::array<T*, 0>&,
                               const std::array<const T*, 1>& p, const T* aux, T dt,
                               bool) {
        run_rate<Tanh>(n, J, out, p, aux, dt);
    }
};

// out = amplitude / (tau_ref + tau_rc * log1p(1 / (J - 1))) for J > 1, else 0
struct LIFRate {
    static constexpr const char* kind = "neurons_lif_rate";
    static constexpr Names<0> states{};
    static constexpr Names<3> params{"tau_rc", "tau_ref", "amplitude"};
    template <typename T>
    static T step(T J, const std::array<T*, 0>&, const std::array<T, 3>& p, T) {
        return neurons::lif_rate(J, p[0], p[1], p[2]);
    }
    template <int B>  // neurons::lif_rate's float operations, log1p in double lanes
    static NC_INLINE VecF<B> vec(VecF<B> J, const std::array<const float*, 3>& p,
                                 const float*, int64_t k, MaskF<B>& bad) {
        using S = Simd<float, B>;
        const auto zero = S::splat(0.0f), one = S::splat(1.0f);
        const auto j = J - one;
        const auto pos = S::gt(j, zero);
        typename S::M b{};  // 1 / (J - 1) infinite or NaN: only where J > 1 counts
        const auto l = SimdF32Math<B>::log1p(S::select(pos, one / j, zero), b);
        bad |= b & pos;
        const auto rate = S::load(p[2] + k) / (S::load(p[1] + k) + S::load(p[0] + k) * l);
        return S::select(pos, rate, zero);
    }
    template <typename T>
    static void run_contiguous(int64_t n, const T* J, T* out, const std::array<T*, 0>&,
                               const std::array<const T*, 3>& p, const T* aux, T dt,
                               bool) {
        run_rate<LIFRate>(n, J, out, p, aux, dt);
    }
};

// NengoDL's LeakyReLU: out = amplitude * (J < 0 ? negative_slope * J : J)
struct LeakyReLU {
    static constexpr const char* kind = "neurons_leaky_relu";
    static constexpr Names<0> states{};
    static constexpr Names<2> params{"amplitude", "negative_slope"};
    template <typename T>
    static T step(T J, const std::array<T*, 0>&, const std::array<T, 2>& p, T) {
        return neurons::leaky_relu(J, p[0], p[1]);
    }
};

// NengoDL's SpikingLeakyReLU: LeakyReLU's rate integrated, trunc(v) spikes
struct SpikingLeakyReLU {
    static constexpr bool kAvx2Loop = true;  // floor / trunc vectorised: 2x
    static constexpr const char* kind = "neurons_spiking_leaky_relu";
    static constexpr Names<1> states{"voltage"};
    static constexpr Names<2> params{"amplitude", "negative_slope"};
    template <typename T>
    static T step(T J, const std::array<T*, 1>& s, const std::array<T, 2>& p, T dt) {
        return neurons::spiking_leaky_relu(J, *s[0], dt, p[0], p[1]);
    }
};

// NengoDL's SoftLIFRate: LIFRate with a softplus-smoothed threshold
struct SoftLIFRate {
    static constexpr const char* kind = "neurons_soft_lif_rate";
    static constexpr Names<0> states{};
    static constexpr Names<4> params{"tau_rc", "tau_ref", "amplitude", "sigma"};
    // log(sigma), the asymptote's constant (the vector pass reads it)
    template <typename T>
    static T aux(const std::array<T, 4>& p, T) {
        using std::log;
        return log(p[3]);
    }
    template <typename T>
    static T step(T J, const std::array<T*, 0>&, const std::array<T, 4>& p, T, T) {
        return neurons::soft_lif_rate(J, p[0], p[1], p[2], p[3]);
    }
    // neurons::soft_lif_q's float operations with exp and log1p in double
    // lanes (libm: 45-56 ns per neuron), the asymptote (J - 1) / sigma <= -20
    // as -js - log(sigma) with aux's log(sigma) (the same libm value); NaN runs
    // the scalar step.  exp's argument is clamped to [-20, 30], where the
    // lanes outside do not use it.
    template <int B>
    static NC_INLINE VecF<B> vec(VecF<B> J, const std::array<const float*, 4>& p,
                                 const float* log_sigma, int64_t k, MaskF<B>& bad) {
        using S = Simd<float, B>;
        using Math = SimdF32Math<B>;
        const auto one = S::splat(1.0f), lo = S::splat(-20.0f), hi = S::splat(30.0f);
        const auto sigma = S::load(p[3] + k);
        const auto js = (J - one) / sigma;
        const auto above = S::gt(js, lo);
        bad |= ~S::eq(js, js);
        auto clamped = js < hi ? js : hi;
        clamped = clamped > lo ? clamped : lo;
        typename S::M b{};  // (only lanes above the asymptote use these functions)
        const auto softplus = Math::log1p(Math::exp(clamped, b), b);
        const auto z = (js > hi ? js : softplus) * sigma;
        const auto q_soft = Math::log1p(one / z, b);
        bad |= b & above;
        const auto q = S::select(above, q_soft, -js - S::load(log_sigma + k));
        return S::load(p[2] + k) / (S::load(p[1] + k) + S::load(p[0] + k) * q);
    }
    template <typename T>
    static void run_contiguous(int64_t n, const T* J, T* out, const std::array<T*, 0>&,
                               const std::array<const T*, 4>& p, const T* aux, T dt,
                               bool) {
        run_rate<SoftLIFRate>(n, J, out, p, aux, dt);
    }
};

// The start of a LIF step for a vector of neurons, shared by every path: the
// decremented refractory time r, the part of the step integrated (delta_t),
// and the lanes that integrate all of it (`whole`) or part of it (`partial`).
template <typename T, int B>
struct LifHead {
    using S = Simd<T, B>;
    using V = typename S::V;
    using M = typename S::M;
    V r, delta_t;
    M whole, partial;

    NC_INLINE LifHead(V ref, V dt) {
        const V zero = S::splat(T(0));
        r = ref - dt;
        const V d = dt - r;  // neurons::lif_delta_t
        delta_t = d > dt ? dt : d;
        delta_t = d < zero ? zero : delta_t;
        whole = S::eq(delta_t, dt);
        partial = ~(whole | S::eq(delta_t, zero));
    }
    // expm1(-delta_t / tau_rc) where no lane is partial (neurons::lif_decay)
    NC_INLINE V decay(V full_decay) const {
        return S::select(whole, full_decay, S::splat(T(-0.0)));
    }
};

// The rest of a LIF step of a vector of float32 neurons, every case of
// neurons::lif_spiking as branch-free selects, with expm1 and log1p from
// `Math`: SimdF32Series (float lanes, small arguments) on whole vectors of
// neurons, with no branches (spikes are unpredictable); SimdF32Math (double
// lanes, any argument) only when some lane needs it.  Updates v and ref,
// returns the output; lanes outside Math's domain are marked in `bad` and
// must be recomputed.
template <int B, typename Math>
NC_INLINE typename Simd<float, B>::V lif_vector_tail(
    const LifHead<float, B>& h, typename Simd<float, B>::V J, typename Simd<float, B>::V& v,
    typename Simd<float, B>::V& ref, typename Simd<float, B>::V tau_rc,
    typename Simd<float, B>::V tau_ref, typename Simd<float, B>::V min_v,
    typename Simd<float, B>::V amp, typename Simd<float, B>::V full_decay, float dt_,
    typename Simd<float, B>::M& bad) {
    using S = Simd<float, B>;
    using V = typename S::V;
    using M = typename S::M;
    constexpr bool branch_free = Math::kBranchFree;
    const V dt = S::splat(dt_), zero = S::splat(0.0f), one = S::splat(1.0f);
    V decay = h.decay(full_decay);
    if (branch_free || S::any(h.partial)) {
        M b{};
        const V e = Math::expm1(-h.delta_t / tau_rc, b);
        decay = S::select(h.partial, e, decay);
        bad |= b & h.partial;
    }
    V vn = v - (J - v) * decay;
    const M spiked = S::gt(vn, one);
    V r_new = h.r;
    if (branch_free || S::any(spiked)) {
        M b{};
        const V l = Math::log1p(-(vn - one) / (J - one), b);
        r_new = S::select(spiked, tau_ref + (dt + tau_rc * l), h.r);
        bad |= b & spiked;
    }
    v = S::select(spiked, zero, vn < min_v ? min_v : vn);
    ref = r_new;
    return S::select(spiked, amp / dt, zero);
}

// The float32 neurons of a lif_contiguous segment that need the series,
// compacted: a vector's listed lanes are moved to its first lanes by one
// permutation and stored at the end of the rows, so that lif_vector_tail runs
// on full vectors of them.  Member functions, not lambdas: a lambda that is
// not inlined is compiled for the base target, and AVX vectors passed to it
// break the calling convention (a crash under LTO).
template <int B>
struct LifStage {
    using S = Simd<float, B>;
    using V = typename S::V;
    using M = typename S::M;
    using SI = Simd<int32_t, B>;
    static constexpr int W = S::W;
    static constexpr int64_t kLen = kNeuronSegment + W;  // slack: every store writes W lanes
    alignas(64) float v[kLen], ref[kLen], J[kLen];
    alignas(64) int32_t idx[kLen];  // neuron in the segment
    int64_t n = 0;
    typename SI::V iota;  // 0, 1, ..., W - 1

    LifStage() {
        for (int i = 0; i < W; ++i) iota[i] = i;
    }

    // Appends the lanes of neurons k .. k + W - 1 that `listed` selects.
    NC_INLINE void add(int64_t k, M listed, V vk, V rk, V Jk) {
        const unsigned bits = mask_bits<B>(listed);
        S::store(v + n, compress<float, B>(vk, bits));
        S::store(ref + n, compress<float, B>(rk, bits));
        S::store(J + n, compress<float, B>(Jk, bits));
        SI::store(idx + n, compress<int32_t, B>(iota + static_cast<int32_t>(k), bits));
        n += __builtin_popcount(bits);
    }

    // Appends neuron q.
    NC_INLINE void add_one(int32_t q, const float* v_in, const float* ref_in, const float* J_in) {
        v[n] = v_in[q], ref[n] = ref_in[q], J[n] = J_in[q], idx[n] = q;
        ++n;
    }

    // lif_vector_tail with `Math` on the staged neurons, W at a time (the last
    // vector padded with copies of the first neuron: valid operands); writes
    // the results of good lanes, lists the bad ones (outside Math's range).
    template <typename Math>
    NC_INLINE void run(bool uniform, const std::array<const float*, 4>& p,
                       const float* full_decay, float* v_out, float* ref_out, float* out,
                       float dt, int32_t* listed, int64_t& n_listed) {
        for (int64_t i = n; i < (n + W - 1) / W * W; ++i)
            v[i] = v[0], ref[i] = ref[0], J[i] = J[0], idx[i] = idx[0];
        const V vdt = S::splat(dt);
        for (int64_t j = 0; j < n; j += W) {
            const int32_t* at = idx + j;
            V vv = S::load(v + j), rr = S::load(ref + j);
            M bad{};
            const V y = lif_vector_tail<B, Math>(
                LifHead<float, B>(rr, vdt), S::load(J + j), vv, rr,
                gather_or_splat<float, B>(uniform, p[0], at),
                gather_or_splat<float, B>(uniform, p[1], at),
                gather_or_splat<float, B>(uniform, p[2], at),
                gather_or_splat<float, B>(uniform, p[3], at),
                gather_or_splat<float, B>(uniform, full_decay, at), dt, bad);
            const int m = static_cast<int>(std::min<int64_t>(W, n - j));
            for (int i = 0; i < m; ++i) {
                const int32_t q = at[i];
                if (bad[i])
                    listed[n_listed++] = q;
                else
                    v_out[q] = vv[i], ref_out[q] = rr[i], out[q] = y[i];
            }
        }
    }
};
struct NoStage {};

// LIF over consecutive neurons, vectorised.  A vector of neurons at a time:
// when every neuron integrates the whole step (or none of it: refractory)
// without spiking, the very operations of neurons::lif_spiking as branch-free
// selects complete them.  The others (spiking, or leaving the refractory
// period mid-step) need log1p or expm1; the pass completes the vector's other
// neurons and lists these:
//
// float32: the pass stages the listed neurons of whole vectors (LifStage)
// and then runs lif_vector_tail with SimdF32Series (float lanes: within an
// ulp of libm's float32 functions) on full vectors of them; each lane computes
// as it would in its own vector, so the grouping changes no result.  Why: a
// network's neurons spike or leave the refractory period in 10-30 % of their
// updates, so most vectors hold such a neuron; running the series on those
// vectors as they came cost 3.2 ns per update against 0.6-0.7 for silent
// ones.  The float32 pass has no branch on the listed lanes (they are
// unpredictable; staging an empty set costs less than a mispredicted branch;
// float64's scalar path is dearer, so it skips silent vectors).  Lanes outside the
// series' range (|argument| > 1/8: dt / tau_rc > 1/8, or a spike overshooting
// by more than 1/8 of J - 1) and the last n % W neurons are listed again and
// staged for lif_vector_tail with SimdF32Math (double lanes); the rare lanes
// outside even that domain run lif_spiking.
// float64: the listed neurons run lif_spiking, so every result is
// bit-identical to the scalar kernel's (and to Nengo's).
template <typename T, int B, bool short_series = false>
NC_INLINE void lif_contiguous(int64_t n, const T* J, T* out, T* v, T* ref,
                              const std::array<const T*, 4>& p, const T* full_decay, T dt,
                              bool uniform) {
    using S = Simd<T, B>;
    using V = typename S::V;
    using M = typename S::M;
    constexpr int W = S::W;
    constexpr bool f32 = std::is_same_v<T, float>;
    const T *tau_rc = p[0], *tau_ref = p[1], *min_v = p[2], *amp = p[3];
    auto one_neuron = [&](int64_t k) {
        out[k] = neurons::lif_spiking(J[k], v[k], ref[k], dt, tau_rc[k], tau_ref[k], min_v[k],
                                      amp[k], full_decay[k]);
    };
    assert(n <= kNeuronSegment);  // the lists below hold a segment
    std::conditional_t<f32, LifStage<B>, NoStage> stage;
    // listed: neurons for SimdF32Math (float32) or lif_spiking (float64)
    int32_t listed[kNeuronSegment + W];
    int64_t n_listed = 0;
    const V vdt = S::splat(dt), zero = S::splat(T(0)), one = S::splat(T(1));
    int64_t k = 0;
    for (; k + W <= n; k += W) {
        const V vk = S::load(v + k), rk = S::load(ref + k), Jk = S::load(J + k);
        const LifHead<T, B> h(rk, vdt);
        const V fd = S::load(full_decay + k);
        V vn = vk - (Jk - vk) * h.decay(fd);
        const M slow = h.partial | S::gt(vn, one);
        const V mv = S::load(min_v + k);
        vn = vn < mv ? mv : vn;
        if (!f32 && !S::any(slow)) {
            S::store(v + k, vn);
            S::store(ref + k, h.r);
            S::store(out + k, zero);
            continue;
        }
        S::store(v + k, S::select(slow, vk, vn));
        S::store(ref + k, S::select(slow, rk, h.r));
        S::store(out + k, S::select(slow, S::load(out + k), zero));
        if constexpr (f32) {
            stage.add(k, slow, vk, rk, Jk);
        } else {
            for (int i = 0; i < W; ++i) {  // branch-free: spikes are unpredictable
                listed[n_listed] = static_cast<int32_t>(k + i);
                n_listed += slow[i] != 0;
            }
        }
    }
    for (; k < n; ++k) listed[n_listed++] = static_cast<int32_t>(k);
    if constexpr (f32) {
        stage.template run<SimdF32Series<B, short_series>>(uniform, p, full_decay, v, ref, out,
                                                             dt, listed, n_listed);
        // then the listed ones, through SimdF32Math; lif_spiking for its bad lanes
        stage.n = 0;
        for (int64_t j = 0; j < n_listed; ++j) stage.add_one(listed[j], v, ref, J);
        n_listed = 0;
        stage.template run<SimdF32Math<B>>(uniform, p, full_decay, v, ref, out, dt, listed,
                                           n_listed);
        for (int64_t j = 0; j < n_listed; ++j) one_neuron(listed[j]);
    } else {
        for (int64_t j = 0; j < n_listed; ++j) one_neuron(listed[j]);
    }
}

template <typename T>
NC_TARGET_AVX2 void lif_contiguous_avx2(int64_t n, const T* J, T* out, T* v, T* ref,
                                        const std::array<const T*, 4>& p, const T* full_decay,
                                        T dt, bool uniform) {
    // the shorter series covers expm1's argument (at most dt / tau_rc) and, for
    // voltages that start the step at most 1, log1p's (below dt / tau_rc too)
    if (uniform && dt <= p[0][0] * T(SimdF32Series<32, true>::kRange))
        lif_contiguous<T, 32, true>(n, J, out, v, ref, p, full_decay, dt, uniform);
    else
        lif_contiguous<T, 32>(n, J, out, v, ref, p, full_decay, dt, uniform);
}

// 16 float32 lanes (docs/benchmarks.md item 21)
template <typename T>
NC_TARGET_AVX512 void lif_contiguous_avx512(int64_t n, const T* J, T* out, T* v, T* ref,
                                            const std::array<const T*, 4>& p,
                                            const T* full_decay, T dt, bool uniform) {
    if (uniform && dt <= p[0][0] * T(SimdF32Series<64, true>::kRange))
        lif_contiguous<T, 64, true>(n, J, out, v, ref, p, full_decay, dt, uniform);
    else
        lif_contiguous<T, 64>(n, J, out, v, ref, p, full_decay, dt, uniform);
}

// LIF: see neurons::lif_spiking.
struct LIF {
    static constexpr const char* kind = "neurons_lif";
    static constexpr Names<2> states{"voltage", "refractory_time"};
    static constexpr Names<4> params{"tau_rc", "tau_ref", "min_voltage", "amplitude"};
    template <typename T>
    static T aux(const std::array<T, 4>& p, T dt) {
        return neurons::lif_full_step_decay(dt, p[0]);
    }
    template <typename T>
    static T step(T J, const std::array<T*, 2>& s, const std::array<T, 4>& p, T dt, T decay) {
        return neurons::lif_spiking(J, *s[0], *s[1], dt, p[0], p[1], p[2], p[3], decay);
    }
    template <typename T>
    static void run_contiguous(int64_t n, const T* J, T* out, const std::array<T*, 2>& s,
                               const std::array<const T*, 4>& p, const T* full_decay, T dt,
                               bool uniform) {
        // float64 gained nothing from 8 lanes (its spiking lanes run lif_spiking)
        if constexpr (std::is_same_v<T, float>) {
            if (simd_level() >= kSimdAvx512)
                return lif_contiguous_avx512(n, J, out, s[0], s[1], p, full_decay, dt, uniform);
        }
        if (cpu_has_avx2())
            lif_contiguous_avx2(n, J, out, s[0], s[1], p, full_decay, dt, uniform);
        else
            lif_contiguous<T, 16>(n, J, out, s[0], s[1], p, full_decay, dt, uniform);
    }
};

// An adaptive model over consecutive neurons: its base model's contiguous
// pass on J - n (n: the adaptation), then n += (dt / tau_n) (inc_n out - n),
// neurons::adaptive_lif(_rate)'s arithmetic bit for bit.
template <typename Base, typename T>
NC_INLINE void adaptive_contiguous(int64_t n, const T* J, T* out, T* adaptation,
                                   const std::array<T*, Base::states.size()>& base_states,
                                   const std::array<const T*, Base::params.size()>& base_params,
                                   const T* tau_n, const T* inc_n, const T* base_aux, T dt,
                                   bool uniform) {
    assert(n <= kNeuronSegment);
    T net[kNeuronSegment];
    for (int64_t k = 0; k < n; ++k) net[k] = J[k] - adaptation[k];
    // the pass reads net[0, n), written above (GCC's sanitizer build cannot tell)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
    Base::template run_contiguous<T>(n, net, out, base_states, base_params, base_aux, dt,
                                     uniform);
#pragma GCC diagnostic pop
    for (int64_t k = 0; k < n; ++k) neurons::adapt(adaptation[k], out[k], dt, tau_n[k], inc_n[k]);
}

// out = LIFRate(J - n); n += (dt / tau_n) * (inc_n * out - n)
struct AdaptiveLIFRate {
    static constexpr const char* kind = "neurons_adaptive_lif_rate";
    static constexpr Names<1> states{"adaptation"};
    static constexpr Names<5> params{"tau_n", "inc_n", "tau_rc", "tau_ref", "amplitude"};
    template <typename T>
    static T step(T J, const std::array<T*, 1>& s, const std::array<T, 5>& p, T dt) {
        return neurons::adaptive_lif_rate(J, *s[0], dt, p[0], p[1], p[2], p[3], p[4]);
    }
    // LIFRate's vector pass (float32: log1p in double lanes) on J - n
    template <typename T>
    static void run_contiguous(int64_t n, const T* J, T* out, const std::array<T*, 1>& s,
                               const std::array<const T*, 5>& p, const T*, T dt, bool) {
        adaptive_contiguous<LIFRate, T>(n, J, out, s[0], {}, {p[2], p[3], p[4]}, p[0], p[1],
                                        nullptr, dt, false);
    }
};

// out = LIF(J - n) (updating voltage, refractory_time); n += (dt / tau_n) * (inc_n * out - n)
struct AdaptiveLIF {
    static constexpr const char* kind = "neurons_adaptive_lif";
    static constexpr Names<3> states{"voltage", "refractory_time", "adaptation"};
    static constexpr Names<6> params{"tau_n",   "inc_n",       "tau_rc",
                                     "tau_ref", "min_voltage", "amplitude"};
    template <typename T>
    static T aux(const std::array<T, 6>& p, T dt) {
        return neurons::lif_full_step_decay(dt, p[2]);
    }
    template <typename T>
    static T step(T J, const std::array<T*, 3>& s, const std::array<T, 6>& p, T dt, T decay) {
        return neurons::adaptive_lif(J, *s[0], *s[1], *s[2], dt, p[0], p[1], p[2], p[3], p[4],
                                     p[5], decay);
    }
    // LIF's vector pass on J - n (its full-step decay is this model's aux)
    template <typename T>
    static void run_contiguous(int64_t n, const T* J, T* out, const std::array<T*, 3>& s,
                               const std::array<const T*, 6>& p, const T* full_decay, T dt,
                               bool uniform) {
        adaptive_contiguous<LIF, T>(n, J, out, s[2], {s[0], s[1]}, {p[2], p[3], p[4], p[5]},
                                    p[0], p[1], full_decay, dt, uniform);
    }
};

// Izhikevich: see neurons::izhikevich.
struct Izhikevich {
    static constexpr const char* kind = "neurons_izhikevich";
    static constexpr Names<2> states{"voltage", "recovery"};
    static constexpr Names<4> params{"tau_recovery", "coupling", "reset_voltage",
                                     "reset_recovery"};
    template <typename T>
    static T step(T J, const std::array<T*, 2>& s, const std::array<T, 4>& p, T dt) {
        return neurons::izhikevich(J, *s[0], *s[1], dt, p[0], p[1], p[2], p[3]);
    }
};

// RegularSpiking's own op (its base type runs as a separate SimNeurons op that
// writes the rate J read here): v += dt * J; out = floor(v) * amplitude / dt;
// v -= floor(v).
struct RegularSpiking {
    static constexpr bool kAvx2Loop = true;  // floor / trunc vectorised: 2x
    static constexpr const char* kind = "neurons_regular_spiking";
    static constexpr Names<1> states{"voltage"};
    static constexpr Names<1> params{"amplitude"};
    template <typename T>
    static T step(T J, const std::array<T*, 1>& s, const std::array<T, 1>& p, T dt) {
        return neurons::regular_spikes(J, *s[0], dt, p[0]);
    }
};

NC_REGISTER_NEURONS(RectifiedLinear);
NC_REGISTER_NEURONS(SpikingRectifiedLinear);
NC_REGISTER_NEURONS(Sigmoid);
NC_REGISTER_NEURONS(Tanh);
NC_REGISTER_NEURONS(LIFRate);
NC_REGISTER_NEURONS(LIF);
NC_REGISTER_NEURONS(AdaptiveLIFRate);
NC_REGISTER_NEURONS(AdaptiveLIF);
NC_REGISTER_NEURONS(Izhikevich);
NC_REGISTER_NEURONS(RegularSpiking);
NC_REGISTER_NEURONS(LeakyReLU);
NC_REGISTER_NEURONS(SpikingLeakyReLU);
NC_REGISTER_NEURONS(SoftLIFRate);

}  // namespace
}  // namespace nc
