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
#include "lif_vector.h"
#include "parallel.h"
#include "program.h"
#include "segments.h"
#include "simd.h"
#include "simd_math.h"

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

// v += max(J, 0) * dt; out = floor(v) * spike_height; v -= floor(v)
struct SpikingRectifiedLinear {
    static constexpr bool kAvx2Loop = true;  // floor / trunc vectorised: 2x
    static constexpr const char* kind = "neurons_spiking_rectified_linear";
    static constexpr Names<1> states{"voltage"};
    static constexpr Names<1> params{"spike_height"};
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

template <typename M, typename = void>
struct zero_up_to_one : std::false_type {};
template <typename M>
struct zero_up_to_one<M, std::void_t<decltype(M::kZeroUpToOne)>>
    : std::bool_constant<M::kZeroUpToOne> {};

// The first n / W * W neurons (n <= kNeuronSegment: a segment) of a model
// whose output is 0 for J <= 1 (LIFRate): the neurons above threshold are
// compacted into full vectors (their J and index, as LifStage does) and only
// those run Model::vec_of, with the parameters splatted where the segment's
// are one value each (`uniform`, Segment::uniform), else gathered; the
// others get 0 (J NaN counts as above: Model::vec_of decides).  Half of an
// ensemble's neurons are below threshold at a time, mixed in every vector,
// and the logarithm is most of the cost.  Each lane computes what it would
// in place: the same bits.  Returns the neurons done.
template <int B, typename Model, size_t P>
NC_INLINE int64_t rate_f32_active(int64_t n, const float* J, float* out,
                                  const std::array<const float*, P>& p, bool uniform) {
    using S = Simd<float, B>;
    using SI = Simd<int32_t, B>;
    using V = typename S::V;
    constexpr int W = S::W;
    assert(n <= kNeuronSegment);  // the lists below hold a segment
    alignas(64) float js[kNeuronSegment + W];
    alignas(64) int32_t idx[kNeuronSegment + W];
    const V one = S::splat(1.0f), zero = S::splat(0.0f);
    const int64_t whole = n / W * W;
    int64_t m = 0;
    typename SI::V lanes;
    for (int i = 0; i < W; ++i) lanes[i] = i;
    for (int64_t k = 0; k < whole; k += W, lanes += W) {
        const V Jk = S::load(J + k);
        const unsigned bits = mask_bits<float, B>(~S::le(Jk, one));
        S::store(out + k, zero);
        S::store(js + m, compress<float, B>(Jk, bits));
        SI::store(idx + m, compress<int32_t, B>(lanes, bits));
        m += __builtin_popcount(bits);
    }
    if (m == 0) return whole;
    for (int64_t i = m; i < (m + W - 1) / W * W; ++i) js[i] = 2.0f, idx[i] = idx[0];
    for (int64_t j = 0; j < m; j += W) {
        std::array<V, P> q;
        for (size_t u = 0; u < P; ++u)
            q[u] = gather_or_splat<float, B>(uniform, p[u], idx + j);
        typename S::M bad{};
        const V y = Model::template vec_of<B>(S::load(js + j), q, bad);
        const int64_t c = std::min<int64_t>(W, m - j);
        for (int64_t i = 0; i < c; ++i) {
            const int32_t t = idx[j + i];
            out[t] = bad[i] ? rate_at<Model>(J, p, static_cast<const float*>(nullptr), t, 0.0f)
                            : y[i];
        }
    }
    return whole;
}

template <int B, typename Model, size_t P>
NC_INLINE void rate_f32(int64_t n, const float* J, float* out,
                        const std::array<const float*, P>& p, const float* aux, bool uniform) {
    using S = Simd<float, B>;
    constexpr int W = S::W;
    int64_t k = 0;
    if constexpr (zero_up_to_one<Model>::value && B >= 32)
        k = rate_f32_active<B, Model>(n, J, out, p, uniform);
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
        rate_f32<B / 2, Model>(n - k, J + k, out + k, q, aux != nullptr ? aux + k : nullptr,
                               uniform);
    } else {
        for (; k < n; ++k) out[k] = rate_at<Model>(J, p, aux, k, 0.0f);
    }
}

template <typename Model, size_t P>
NC_TARGET_AVX2 void rate_f32_avx2(int64_t n, const float* J, float* out,
                                  const std::array<const float*, P>& p, const float* aux,
                                  bool uniform) {
    rate_f32<32, Model>(n, J, out, p, aux, uniform);
}
template <typename Model, size_t P>
NC_TARGET_AVX512 void rate_f32_avx512(int64_t n, const float* J, float* out,
                                      const std::array<const float*, P>& p, const float* aux,
                                      bool uniform) {
    rate_f32<64, Model>(n, J, out, p, aux, uniform);
}

// Model::run_contiguous of such a model: float32 as above, float64 libm per
// neuron (bit for bit as Nengo).  `uniform`: the segment's parameters are one
// value each (Segment::uniform).
template <typename Model, typename T, size_t P>
NC_INLINE void run_rate(int64_t n, const T* J, T* out, const std::array<const T*, P>& p,
                        const T* aux, T dt, bool uniform) {
    if constexpr (std::is_same_v<T, float>) {
        if (simd_level() >= kSimdAvx512)
            rate_f32_avx512<Model>(n, J, out, p, aux, uniform);
        else if (cpu_has_avx2())
            rate_f32_avx2<Model>(n, J, out, p, aux, uniform);
        else
            rate_f32<16, Model>(n, J, out, p, aux, uniform);
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
                               bool uniform) {
        run_rate<Sigmoid>(n, J, out, p, aux, dt, uniform);
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
                               bool uniform) {
        run_rate<Tanh>(n, J, out, p, aux, dt, uniform);
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
    // neurons::lif_rate's float operations, log1p in double lanes; the
    // parameters' vectors given (tau_rc, tau_ref, amplitude)
    template <int B>
    static NC_INLINE VecF<B> vec_of(VecF<B> J, const std::array<VecF<B>, 3>& q,
                                    MaskF<B>& bad) {
        using S = Simd<float, B>;
        const auto zero = S::splat(0.0f), one = S::splat(1.0f);
        const auto j = J - one;
        const auto pos = S::gt(j, zero);
        typename S::M b{};  // 1 / (J - 1) infinite or NaN: only where J > 1 counts
        const auto l = SimdF32Math<B>::log1p(S::select(pos, one / j, zero), b);
        bad |= b & pos;
        const auto rate = q[2] / (q[1] + q[0] * l);
        return S::select(pos, rate, zero);
    }
    template <int B>
    static NC_INLINE VecF<B> vec(VecF<B> J, const std::array<const float*, 3>& p,
                                 const float*, int64_t k, MaskF<B>& bad) {
        using S = Simd<float, B>;
        return vec_of<B>(J, {S::load(p[0] + k), S::load(p[1] + k), S::load(p[2] + k)}, bad);
    }
    // rate_f32 computes only neurons above threshold (J > 1) in vectors: the
    // others' output is 0
    static constexpr bool kZeroUpToOne = true;
    template <typename T>
    static void run_contiguous(int64_t n, const T* J, T* out, const std::array<T*, 0>&,
                               const std::array<const T*, 3>& p, const T* aux, T dt,
                               bool uniform) {
        run_rate<LIFRate>(n, J, out, p, aux, dt, uniform);
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
    static constexpr Names<2> params{"spike_height", "negative_slope"};
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
                               bool uniform) {
        run_rate<SoftLIFRate>(n, J, out, p, aux, dt, uniform);
    }
};

// LIF: see neurons::lif_spiking.
struct LIF {
    static constexpr const char* kind = "neurons_lif";
    static constexpr Names<2> states{"voltage", "refractory_time"};
    static constexpr Names<4> params{"tau_rc", "tau_ref", "min_voltage", "spike_height"};
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
        if (simd_level() >= kSimdAvx512)
            lif_contiguous_avx512(n, J, out, s[0], s[1], p, full_decay, dt, uniform);
        else if (cpu_has_avx2())
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
    // the element-wise loops at AVX2's width where the CPU has it (this
    // function is compiled for the base target); the same operations per
    // neuron, so the same bits
    with_simd([&]() NC_LAMBDA {
        for (int64_t k = 0; k < n; ++k) net[k] = J[k] - adaptation[k];
    });
    // the pass reads net[0, n), written above (GCC's sanitizer build cannot tell)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
    Base::template run_contiguous<T>(n, net, out, base_states, base_params, base_aux, dt,
                                     uniform);
#pragma GCC diagnostic pop
    with_simd([&]() NC_LAMBDA {
        for (int64_t k = 0; k < n; ++k)
            neurons::adapt(adaptation[k], out[k], dt, tau_n[k], inc_n[k]);
    });
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
                                     "tau_ref", "min_voltage", "spike_height"};
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
    static constexpr Names<5> params{"tau_recovery", "coupling", "reset_voltage",
                                     "reset_recovery", "spike_height"};
    template <typename T>
    static T step(T J, const std::array<T*, 2>& s, const std::array<T, 5>& p, T dt) {
        return neurons::izhikevich(J, *s[0], *s[1], dt, p[0], p[1], p[2], p[3], p[4]);
    }
};

// RegularSpiking's own op (its base type runs as a separate SimNeurons op that
// writes the rate J read here): v += dt * J; out = floor(v) * spike_height;
// v -= floor(v).
struct RegularSpiking {
    static constexpr bool kAvx2Loop = true;  // floor / trunc vectorised: 2x
    static constexpr const char* kind = "neurons_regular_spiking";
    static constexpr Names<1> states{"voltage"};
    static constexpr Names<1> params{"spike_height"};
    template <typename T>
    static T step(T J, const std::array<T*, 1>& s, const std::array<T, 1>& p, T dt) {
        return neurons::regular_spikes(J, *s[0], dt, p[0]);
    }
};

// StochasticSpiking's kernel operator (nengo_cuda/random_splits.py: its base
// type runs as a separate SimNeurons op that writes the rate J read here, and
// a process table writes this step's uniform numbers into `uniform`, which is
// read, not written): see neurons::stochastic_spikes.
struct StochasticSpiking {
    static constexpr const char* kind = "neurons_stochastic_spiking";
    static constexpr Names<1> states{"uniform"};
    static constexpr Names<2> params{"spike_height", "negative"};
    template <typename T>
    static T step(T J, const std::array<T*, 1>& s, const std::array<T, 2>& p, T dt) {
        return neurons::stochastic_spikes(J, *s[0], dt, p[0], p[1]);
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
NC_REGISTER_NEURONS(StochasticSpiking);
NC_REGISTER_NEURONS(LeakyReLU);
NC_REGISTER_NEURONS(SpikingLeakyReLU);
NC_REGISTER_NEURONS(SoftLIFRate);

}  // namespace
}  // namespace nc
