// Transcendental functions in vector lanes, for the neuron kernels:
// SimdF32Math (float32 in double-precision lanes, any argument: within an ulp
// of libm's float functions), SimdF32Series (float32 in float lanes, small
// arguments: cheap enough for every lane of a vector) and SimdF64Series
// (float64, small arguments, faithfully rounded).
#pragma once
#include <cstdint>
#include <cstring>

#include "simd.h"

namespace nc {

// float32 expm1, log1p, exp and tanh of a float vector, computed in double
// precision lanes and rounded once to float: correctly rounded but for rare
// double roundings, so within an ulp of libm's expm1f / log1pf / expf /
// tanhf.  Lanes outside the supported domain are marked in `bad` (the caller
// computes them with libm).
// Each half of the float vector becomes one double vector of B bytes (wider
// vectors would not map onto the machine's registers).
template <int B>
struct SimdF32Math {
    static constexpr bool kBranchFree = false;  // only where some lane needs it
    using S = Simd<float, B>;
    using V = typename S::V;
    using M = typename S::M;
    static constexpr int W = S::W, H = W / 2;
    using D = typename Simd<double, B>::V;
    using SD = Simd<double, B>;
    using L = typename SD::M;  // int64 lanes
    using F = typename Simd<float, B / 2>::V;
    using I = typename Simd<float, B / 2>::M;

    static NC_INLINE D splat(double x) { return D{} + x; }

    enum Fn { kLog1p, kExpm1, kExp, kTanh };

    // Applies the double-lane function Fn to both halves of x, taken and
    // joined by lane shuffles (through memory, as before, timed the same).
    template <int Fn>
    static NC_INLINE V halves(V x, M& bad) {
        return halves<Fn>(x, bad, std::make_index_sequence<H>{});
    }
    template <int Fn, size_t... K>
    static NC_INLINE V halves(V x, M& bad, std::index_sequence<K...>) {
        const F lo = __builtin_shufflevector(x, x, K...);
        const F hi = __builtin_shufflevector(x, x, (K + H)...);
        L b_lo{}, b_hi{};
        const D d_lo = apply<Fn>(__builtin_convertvector(lo, D), b_lo);
        const D d_hi = apply<Fn>(__builtin_convertvector(hi, D), b_hi);
        const F y_lo = __builtin_convertvector(d_lo, F), y_hi = __builtin_convertvector(d_hi, F);
        const I m_lo = __builtin_convertvector(b_lo, I), m_hi = __builtin_convertvector(b_hi, I);
        bad |= __builtin_shufflevector(m_lo, m_hi, K..., (K + H)...);
        return __builtin_shufflevector(y_lo, y_hi, K..., (K + H)...);
    }
    template <int Fn>
    static NC_INLINE D apply(D x, L& b) {
        if constexpr (Fn == kLog1p) return log1p_d(x, b);
        else if constexpr (Fn == kExpm1) return expm1_d(x, b);
        else if constexpr (Fn == kExp) return exp_d(x, b);
        else return tanh_d(x, b);
    }

    // expm1(x) for |x| <= 1/4: Taylor series to x^9 (relative error < 1e-11),
    // in Estrin's scheme (short dependency chains).  The same terms for every
    // lane: a lane's result must not depend on the other lanes of its vector
    // (a shorter series where all lanes allowed it made results depend on how
    // neurons were grouped, 16 lanes against 8).
    static NC_INLINE D expm1_d(D x, L& bad) {
        bad = ~(SD::le(x, splat(0.25)) & SD::ge(x, splat(-0.25)));
        const D x2 = x * x, x4 = x2 * x2;
        const D p01 = splat(1.0) + x * 0.5;                    // 1 + x/2
        const D p23 = splat(1.0 / 6) + x * (1.0 / 24);         // x^2 (1/3! + x/4!)
        const D p45 = splat(1.0 / 120) + x * (1.0 / 720);      // x^4 (...)
        const D p67 = splat(1.0 / 5040) + x * (1.0 / 40320);   // x^6 (...)
        const D p8 = splat(1.0 / 362880);                      // x^8 / 9!
        const D p = (p01 + x2 * p23) + x4 * ((p45 + x2 * p67) + x4 * p8);
        return x * p;
    }

    // log1p(y) for finite y > -1 (relative error < 1e-12).
    static NC_INLINE D log1p_d(D y, L& bad) {
        const L ok = SD::gt(y, splat(-1.0)) & SD::le(y, splat(3.4028234663852886e38));  // FLT_MAX: not inf
        bad = ~ok;
        // tiny |y|: y - y^2/2 + y^3/3 - y^4/4 (relative error < 1e-16 for |y| < 1e-4)
        const D tiny = y * ((splat(1.0) - y * 0.5) + (y * y) * (splat(1.0 / 3) - y * 0.25));
        // else u = 1 + y (exact for float y with 1e-4 <= |y| < 2^29; beyond, the
        // lost 1 is below double's resolution of log(u)), u = m * 2^e with
        // m in [sqrt(1/2), sqrt(2)), log(u) = e ln2 + 2 atanh((m - 1) / (m + 1))
        const D u = SD::select(ok, splat(1.0) + y, splat(1.0));  // keep bad lanes finite
        L bits;
        std::memcpy(&bits, &u, sizeof bits);
        L ebits = (bits >> 52) & 0x7ff;
        const L mbits = (bits & 0x000fffffffffffffLL) | 0x3ff0000000000000LL;
        D m;
        std::memcpy(&m, &mbits, sizeof m);
        const L big = SD::gt(m, splat(1.4142135623730951));
        m = SD::select(big, m * 0.5, m);
        ebits = ebits - big;  // big is -1 where true
        // the exponent as a double: (2^52 + e_biased) - 2^52 - bias
        const L ed_bits = ebits | 0x4330000000000000LL;
        D e;
        std::memcpy(&e, &ed_bits, sizeof e);
        e = e - 4503599627370496.0 - 1023.0;
        // 2 atanh(s) = 2 (s + s^3/3 + ... + s^13/13), |s| <= 0.1716 (relative
        // error < 1e-12; Estrin in s^2; every lane the same terms, as expm1_d)
        const D s = (m - 1.0) / (m + 1.0), z = s * s, z2 = z * z, z4 = z2 * z2;
        const D q0 = (splat(1.0) + z * (1.0 / 3)) + z2 * (splat(1.0 / 5) + z * (1.0 / 7));
        const D q = q0 + z4 * ((splat(1.0 / 9) + z * (1.0 / 11)) + z2 * (1.0 / 13));
        const D general = e * 0.6931471805599453 + 2.0 * s * q;
        return SD::select(SD::gt(y, splat(-1e-4)) & SD::lt(y, splat(1e-4)), tiny, general);
    }

    // exp(x) for |x| <= 150 (NaN lanes are bad): x = k ln2 + r with k =
    // round(x / ln2), |r| <= ln2 / 2; exp(r) by its Taylor series to r^11
    // (Estrin's scheme, truncation < 1e-14), 2^k from its exponent bits.  k ln2
    // in double is off by up to 3e-14 at |k| = 217, so is exp's relative error.
    static NC_INLINE D exp_d(D x, L& bad) {
        const L ok = SD::le(x, splat(150.0)) & SD::ge(x, splat(-150.0));
        bad = ~ok;
        const D xc = SD::select(ok, x, splat(0.0));
        // adding 1.5 * 2^52 rounds to an integer, which the low mantissa bits
        // then hold (two's complement): no double -> int64 conversion, which
        // AVX2 lacks
        constexpr double kRound = 6755399441055744.0;
        const D shifted = xc * 1.4426950408889634 + kRound;
        const D k = shifted - kRound;
        const D r = xc - k * 0.6931471805599453;
        const D r2 = r * r, r4 = r2 * r2, r8 = r4 * r4;
        const D q0 = (splat(1.0) + r) + r2 * (splat(1.0 / 2) + r * (1.0 / 6));
        const D q1 =
            (splat(1.0 / 24) + r * (1.0 / 120)) + r2 * (splat(1.0 / 720) + r * (1.0 / 5040));
        const D q2 = (splat(1.0 / 40320) + r * (1.0 / 362880)) +
                     r2 * (splat(1.0 / 3628800) + r * (1.0 / 39916800));
        L kbits;
        std::memcpy(&kbits, &shifted, sizeof kbits);
        kbits = (kbits + 1023) << 52;  // the low 12 bits: k + 1023 in [806, 1240]
        D two_k;
        std::memcpy(&two_k, &kbits, sizeof two_k);
        return ((q0 + r4 * q1) + r8 * q2) * two_k;
    }

    // tanh(x) (relative error < 1e-12; NaN lanes are bad): x - x^3/3 + 2 x^5/15 -
    // 17 x^7/315 for |x| < 1/64, else sign(x) (1 - 2 / (exp(2 |x|) + 1)) with
    // |x| clamped to 20 (tanh is 1 in float beyond 9.1).
    static NC_INLINE D tanh_d(D x, L& bad) {
        bad = ~SD::eq(x, x);
        const D x2 = x * x;
        const D series =
            x + (x * x2) * ((splat(-1.0 / 3) + x2 * (2.0 / 15)) + (x2 * x2) * (-17.0 / 315));
        const L neg = SD::lt(x, splat(0.0));
        D a = SD::select(neg, -x, x);
        a = a < splat(20.0) ? a : splat(20.0);  // (NaN lanes: 20, still finite)
        L unused;
        const D t = splat(1.0) - 2.0 / (exp_d(a + a, unused) + 1.0);
        const D general = SD::select(neg, -t, t);
        return a < splat(1.0 / 64) ? series : general;
    }

    static NC_INLINE V expm1(V x, M& bad) { return halves<kExpm1>(x, bad); }
    static NC_INLINE V log1p(V y, M& bad) { return halves<kLog1p>(y, bad); }
    static NC_INLINE V exp(V x, M& bad) { return halves<kExp>(x, bad); }
    static NC_INLINE V tanh(V x, M& bad) { return halves<kTanh>(x, bad); }
};


// float32 expm1 and log1p of small arguments, in float lanes: f(x) = x + x^2
// q(x), q a truncated Taylor series (truncation below 1e-8 relative).  The
// rounding errors of x^2 q(x) are scaled by |x q(x)| <= 1/16 of the result's
// ulp, so the result is faithfully rounded: within an ulp of the exact value
// (and so within about an ulp of libm's expm1f / log1pf).  Twice as many lanes
// as SimdF32Math's double lanes and no conversions, so a whole vector of
// neurons can afford them without branches.  Arguments must lie within
// `kRange` (1/8, or 1/16 with Short: fewer terms); lanes outside are marked in
// `bad`.
template <int B, bool Short = false>
struct SimdF32Series {
    using S = Simd<float, B>;
    using V = typename S::V;
    using M = typename S::M;
    static constexpr bool kBranchFree = true;  // cheap enough for every lane
    static constexpr float kRange = Short ? 0.0625f : 0.125f;
    static NC_INLINE V c(float x) { return S::splat(x); }
    static NC_INLINE M small(V x) { return S::le(x, c(kRange)) & S::ge(x, c(-kRange)); }

    // expm1(x) = x + x^2 (1/2! + x/3! + ... + x^5/7!) (Short: to x^3/5!), in
    // Estrin's scheme (short dependency chains: this runs on every spiking vector)
    static NC_INLINE V expm1(V x, M& bad) {
        bad |= ~small(x);
        const V x2 = x * x;
        const V p01 = c(1.0f / 2) + x * (1.0f / 6);
        const V p23 = c(1.0f / 24) + x * (1.0f / 120);
        if constexpr (Short) {
            return x + x2 * (p01 + x2 * p23);
        } else {
            const V x4 = x2 * x2;
            const V p45 = c(1.0f / 720) + x * (1.0f / 5040);
            return x + x2 * ((p01 + x2 * p23) + x4 * p45);
        }
    }

    // log1p(y) = y + y^2 (-1/2 + y/3 - y^2/4 + ... - y^6/8) (Short: to -y^4/6),
    // Estrin's scheme
    static NC_INLINE V log1p(V y, M& bad) {
        bad |= ~small(y);
        const V y2 = y * y, y4 = y2 * y2;
        const V p01 = c(-1.0f / 2) + y * (1.0f / 3);
        const V p23 = c(-1.0f / 4) + y * (1.0f / 5);
        if constexpr (Short) {
            return y + y2 * ((p01 + y2 * p23) + y4 * (-1.0f / 6));
        } else {
            const V p45 = c(-1.0f / 6) + y * (1.0f / 7);
            return y + y2 * ((p01 + y2 * p23) + y4 * (p45 + y2 * (-1.0f / 8)));
        }
    }
};

// float64 expm1 and log1p of small arguments (|x| <= 1/16), as SimdF32Series
// does for float32: f(x) = x + x^2 q(x) with q a truncated Taylor series
// (truncation below 2^-58 of the result), evaluated in Estrin's scheme.  The
// rounding errors of x^2 q(x) are scaled by |x q(x)| <= 1/30 of the result's
// ulp, so the result is faithfully rounded: within an ulp of the exact value,
// as libm's expm1/log1p (and NumPy's, which on AVX-512 CPUs are not libm's)
// are.  Lanes outside the range are marked in `bad`.
template <int B>
struct SimdF64Series {
    using S = Simd<double, B>;
    using V = typename S::V;
    using M = typename S::M;
    static constexpr bool kBranchFree = true;
    static constexpr double kRange = 0.0625;
    static NC_INLINE V c(double x) { return S::splat(x); }
    static NC_INLINE M small(V x) { return S::le(x, c(kRange)) & S::ge(x, c(-kRange)); }

    // expm1(x) = x + x^2 (1/2! + x/3! + ... + x^8/10!)
    static NC_INLINE V expm1(V x, M& bad) {
        bad |= ~small(x);
        const V x2 = x * x, x4 = x2 * x2, x8 = x4 * x4;
        const V p01 = c(1.0 / 2) + x * (1.0 / 6);
        const V p23 = c(1.0 / 24) + x * (1.0 / 120);
        const V p45 = c(1.0 / 720) + x * (1.0 / 5040);
        const V p67 = c(1.0 / 40320) + x * (1.0 / 362880);
        const V q = ((p01 + x2 * p23) + x4 * (p45 + x2 * p67)) + x8 * (1.0 / 3628800);
        return x + x2 * q;
    }

    // log1p(y) = y + y^2 (-1/2 + y/3 - y^2/4 + ... + y^12/14)
    static NC_INLINE V log1p(V y, M& bad) {
        bad |= ~small(y);
        const V y2 = y * y, y4 = y2 * y2, y8 = y4 * y4;
        const V p01 = c(-1.0 / 2) + y * (1.0 / 3);
        const V p23 = c(-1.0 / 4) + y * (1.0 / 5);
        const V p45 = c(-1.0 / 6) + y * (1.0 / 7);
        const V p67 = c(-1.0 / 8) + y * (1.0 / 9);
        const V p89 = c(-1.0 / 10) + y * (1.0 / 11);
        const V p1011 = c(-1.0 / 12) + y * (1.0 / 13);
        const V q = ((p01 + y2 * p23) + y4 * (p45 + y2 * p67)) +
                    y8 * ((p89 + y2 * p1011) + y4 * (-1.0 / 14));
        return y + y2 * q;
    }
};

}  // namespace nc
