// LIF over consecutive neurons, vectorised: the float32 and float64 passes
// that NeuronGroup<T, LIF> runs on contiguous segments (instr_neurons.cpp),
// bit-identical to neurons::lif_spiking where the text below says so.
#pragma once
#include <algorithm>
#include <array>
#include <cassert>
#include <cstdint>
#include <type_traits>

#include "../kernels/neurons.h"
#include "simd.h"
#include "simd_math.h"

namespace nc {

// Neurons per segment: NeuronGroup's parallel jobs are (trial, segment)
// pairs, and the vector passes' stack buffers hold one segment.
constexpr int64_t kNeuronSegment = 512;

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

// The rest of a LIF step of a vector of neurons, every case of
// neurons::lif_spiking as branch-free selects, with expm1 and log1p from
// `Math`: a series (SimdF32Series, SimdF64Series: small arguments) on whole
// vectors of neurons, with no branches (spikes are unpredictable);
// SimdF32Math (double lanes, any argument) only when some lane needs it.
// Updates v and ref, returns the output; lanes outside Math's domain are
// marked in `bad` and must be recomputed.
template <typename T, int B, typename Math>
NC_INLINE typename Simd<T, B>::V lif_vector_tail(
    const LifHead<T, B>& h, typename Simd<T, B>::V J, typename Simd<T, B>::V& v,
    typename Simd<T, B>::V& ref, typename Simd<T, B>::V tau_rc,
    typename Simd<T, B>::V tau_ref, typename Simd<T, B>::V min_v,
    typename Simd<T, B>::V spike_height, typename Simd<T, B>::V full_decay, T dt_,
    typename Simd<T, B>::M& bad) {
    using S = Simd<T, B>;
    using V = typename S::V;
    using M = typename S::M;
    constexpr bool branch_free = Math::kBranchFree;
    const V dt = S::splat(dt_), zero = S::splat(T(0)), one = S::splat(T(1));
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
    return S::select(spiked, spike_height, zero);
}

// The neurons of a lif_contiguous segment that need the series, compacted
// into full vectors for lif_vector_tail: a vector's listed lanes are moved
// to its first lanes by one permutation and stored at the end of the rows
// (add); float32's second pass appends single neurons (add_one).  Member
// functions, not lambdas: a lambda that is not inlined is compiled for the
// base target, and AVX vectors passed to it break the calling convention (a
// crash under LTO).
template <typename T, int B>
struct LifStage {
    using S = Simd<T, B>;
    using V = typename S::V;
    using M = typename S::M;
    static constexpr int kIdxBytes = B * 4 / static_cast<int>(sizeof(T));
    using SI = Simd<int32_t, kIdxBytes>;  // W neuron indices
    static constexpr int W = S::W;
    static constexpr int64_t kLen = kNeuronSegment + W;  // slack: every store writes W lanes
    alignas(64) T v[kLen], ref[kLen], J[kLen];
    alignas(64) int32_t idx[kLen];  // neuron in the segment
    int64_t n = 0;
    typename SI::V iota;  // 0, 1, ..., W - 1

    LifStage() {
        for (int i = 0; i < W; ++i) iota[i] = i;
    }

    // Stores the lanes of neurons k .. k + W - 1 that `bits` selects (bit i:
    // neuron k + i) from row `at` on; returns the next free row.  The caller
    // keeps the count (in a register: after a store through memcpy GCC would
    // reload a member n from memory, as it may alias anything) and sets n.
    NC_INLINE int64_t add(int64_t at, int64_t k, unsigned bits, V vk, V rk, V Jk) {
        S::store(v + at, compress<T, B>(vk, bits));
        S::store(ref + at, compress<T, B>(rk, bits));
        S::store(J + at, compress<T, B>(Jk, bits));
        SI::store(idx + at, compress<int32_t, kIdxBytes>(iota + static_cast<int32_t>(k), bits));
        return at + __builtin_popcount(bits);
    }

    // Appends neuron q.
    NC_INLINE void add_one(int32_t q, const T* v_in, const T* ref_in, const T* J_in) {
        v[n] = v_in[q], ref[n] = ref_in[q], J[n] = J_in[q], idx[n] = q;
        ++n;
    }

    // lif_vector_tail with `Math` on the staged neurons, W at a time (the last
    // vector padded with copies of the first neuron: valid operands); writes
    // the results of good lanes, lists the bad ones (outside Math's range) and
    // writes back their staged v and ref (the next tier reads them there).
    template <typename Math>
    NC_INLINE void run(bool uniform, const std::array<const T*, 4>& p, const T* full_decay,
                       T* v_out, T* ref_out, T* out, T dt, int32_t* listed,
                       int64_t& n_listed) {
        for (int64_t i = n; i < (n + W - 1) / W * W; ++i)
            v[i] = v[0], ref[i] = ref[0], J[i] = J[0], idx[i] = idx[0];
        const V vdt = S::splat(dt);
        for (int64_t j = 0; j < n; j += W) {
            const int32_t* at = idx + j;
            V vv = S::load(v + j), rr = S::load(ref + j);
            M bad{};
            const V y = lif_vector_tail<T, B, Math>(
                LifHead<T, B>(rr, vdt), S::load(J + j), vv, rr,
                gather_or_splat<T, B>(uniform, p[0], at),
                gather_or_splat<T, B>(uniform, p[1], at),
                gather_or_splat<T, B>(uniform, p[2], at),
                gather_or_splat<T, B>(uniform, p[3], at),
                gather_or_splat<T, B>(uniform, full_decay, at), dt, bad);
            const int m = static_cast<int>(std::min<int64_t>(W, n - j));
            for (int i = 0; i < m; ++i) {
                const int32_t q = at[i];
                if (bad[i]) {
                    listed[n_listed++] = q;
                    v_out[q] = v[j + i], ref_out[q] = ref[j + i];
                } else
                    v_out[q] = vv[i], ref_out[q] = rr[i], out[q] = y[i];
            }
        }
    }
};

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
// float64 at 4 lanes skips silent vectors, see skip_silent).  Lanes outside the
// series' range (|argument| > 1/8: dt / tau_rc > 1/8, or a spike overshooting
// by more than 1/8 of J - 1) are listed again and staged for
// lif_vector_tail with SimdF32Math (double lanes); the rare lanes
// outside even that domain run lif_spiking.
// float64: the pass stages the listed neurons the same way and runs
// lif_vector_tail with SimdF64Series (faithfully rounded expm1 and log1p for
// |argument| <= 1/16, where libm's scalar calls cost 5-7 ns per update); its
// bad lanes and the last neuron (n odd) run lif_spiking.  Both types pass the
// last n % W neurons to the pass at half the width (the last n % 4 float32
// neurons are listed).  Silent neurons'
// results are bit-identical to lif_spiking's; the others within an ulp.
template <typename T, int B, bool short_series = false>
NC_INLINE void lif_contiguous(int64_t n, const T* J, T* out, T* v, T* ref,
                              const std::array<const T*, 4>& p, const T* full_decay, T dt,
                              bool uniform) {
    using S = Simd<T, B>;
    using V = typename S::V;
    constexpr int W = S::W;
    constexpr bool f32 = std::is_same_v<T, float>;
    // float64 at 4 lanes skips vectors without listed lanes: branch-free it
    // measured 1.3x slower at low rates, 1.3x faster at high; at 8 lanes
    // branch-free was faster at every rate (docs/benchmarks.md item 22)
    constexpr bool skip_silent = !f32 && B < 64;
    const T *tau_rc = p[0], *tau_ref = p[1], *min_v = p[2], *height = p[3];
    auto one_neuron = [&](int64_t k) {
        out[k] = neurons::lif_spiking(J[k], v[k], ref[k], dt, tau_rc[k], tau_ref[k], min_v[k],
                                      height[k], full_decay[k]);
    };
    assert(n <= kNeuronSegment);  // the lists below hold a segment
    LifStage<T, B> stage;
    // listed: neurons for SimdF32Math (float32) or SimdF64Series (float64)
    int32_t listed[kNeuronSegment + W];
    int64_t n_listed = 0;
    using K = typename S::K;
    const V vdt = S::splat(dt), zero = S::splat(T(0)), one = S::splat(T(1));
    const V neg_zero = S::splat(T(-0.0));
    // a uniform segment's parameters in registers: two streams of loads fewer
    const V fd0 = S::splat(n > 0 ? full_decay[0] : T(0)), mv0 = S::splat(n > 0 ? min_v[0] : T(0));
    int64_t k = 0, staged = 0;
    for (; k + W <= n; k += W) {
        const V vk = S::load(v + k), rk = S::load(ref + k), Jk = S::load(J + k);
        // LifHead's r and the cases of its delta_t = clip(d, 0, dt), d = dt - r,
        // as masks in the CPU's own form: dt where d >= dt, 0 where d <= 0
        // (NaN: neither), else partial
        const V r = rk - vdt, d = vdt - r;
        const K whole = S::template kcmp<S::kGe>(d, vdt);
        const K none = S::template kcmp<S::kLe>(d, zero);
        const V fd = uniform ? fd0 : S::load(full_decay + k);
        V vn = vk - (Jk - vk) * S::kselect(whole, fd, neg_zero);
        const K slow = K(~(whole | none)) | S::template kcmp<S::kGt>(vn, one);
        const V mv = uniform ? mv0 : S::load(min_v + k);
        vn = vn < mv ? mv : vn;
        // the silent lanes' results; the slow lanes' are written by the stage
        // (or v and ref restored, for the lanes it lists)
        S::store(v + k, vn);
        S::store(ref + k, r);
        S::store(out + k, zero);
        const unsigned bits = kmask_bits<T, B>(slow);
        if (skip_silent && bits == 0) continue;
        staged = stage.add(staged, k, bits, vk, rk, Jk);
    }
    stage.n = staged;
    // the rest in half vectors, down to 16 bytes, then listed: so every width
    // runs each neuron through the same path (a tail neuron listed at one width
    // and staged for the series at another came out an ulp apart)
    if constexpr (B > 16) {
        if (k < n) {
            const std::array<const T*, 4> q{p[0] + k, p[1] + k, p[2] + k, p[3] + k};
            lif_contiguous<T, B / 2, short_series>(n - k, J + k, out + k, v + k, ref + k, q,
                                                   full_decay + k, dt, uniform);
        }
    } else {
        for (; k < n; ++k) listed[n_listed++] = static_cast<int32_t>(k);
    }
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
    } else {  // the staged through SimdF64Series; lif_spiking for its bad lanes, the tail
        stage.template run<SimdF64Series<B>>(uniform, p, full_decay, v, ref, out, dt, listed,
                                            n_listed);
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

// 16 float32 or 8 float64 lanes (docs/benchmarks.md items 21, 22)
template <typename T>
NC_TARGET_AVX512 void lif_contiguous_avx512(int64_t n, const T* J, T* out, T* v, T* ref,
                                            const std::array<const T*, 4>& p,
                                            const T* full_decay, T dt, bool uniform) {
    if (uniform && dt <= p[0][0] * T(SimdF32Series<64, true>::kRange))
        lif_contiguous<T, 64, true>(n, J, out, v, ref, p, full_decay, dt, uniform);
    else
        lif_contiguous<T, 64>(n, J, out, v, ref, p, full_decay, dt, uniform);
}

}  // namespace nc
