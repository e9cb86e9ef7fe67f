// Explicit SIMD for the hot CPU kernels, with GCC/Clang vector extensions.
//
// `Simd<T, B>` is a vector of B bytes of T: B = 16 compiles to SSE2 (or NEON),
// B = 32 to AVX2 inside functions marked NC_TARGET_AVX2.  Kernels are templates
// on B; `cpu_has_avx2()` picks the instantiation at run time, so the module
// still runs on any x86-64 (or other) CPU.
//
// Element-wise vector arithmetic rounds exactly as scalar arithmetic does, and
// the build disables FMA contraction (-ffp-contract=off) outside the dense
// product kernels, so vectorised neuron updates stay bit-identical to the
// scalar ones (and float64 to Nengo).
#pragma once
#include <cstdint>
#include <cstring>
#include <type_traits>

#define NC_INLINE inline __attribute__((always_inline))

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define NC_HAVE_AVX2_DISPATCH 1
#define NC_TARGET_AVX2 __attribute__((target("avx2,fma")))
#else
#define NC_HAVE_AVX2_DISPATCH 0
#define NC_TARGET_AVX2
#endif

namespace nc {

template <typename T, int B>
struct Simd {
    static constexpr int W = B / static_cast<int>(sizeof(T));  // lanes
    typedef T V __attribute__((vector_size(B)));
    using I = std::conditional_t<sizeof(T) == 4, int32_t, int64_t>;
    typedef I M __attribute__((vector_size(B)));  // comparison results: 0 or -1

    static NC_INLINE V load(const T* p) {
        V v;
        std::memcpy(&v, p, sizeof v);
        return v;
    }
    static NC_INLINE void store(T* p, V v) { std::memcpy(p, &v, sizeof v); }
    static NC_INLINE V splat(T x) { return V{} + x; }
    static NC_INLINE bool any(M m) {
        I acc = 0;
        for (int i = 0; i < W; ++i) acc |= m[i];
        return acc != 0;
    }
};

// True when the CPU runs AVX2 and FMA code (checked once).
inline bool cpu_has_avx2() {
#if NC_HAVE_AVX2_DISPATCH
    static const bool ok = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    return ok;
#else
    return false;
#endif
}

}  // namespace nc

namespace nc {

// float32 expm1 and log1p of a float vector, computed in double precision
// lanes and rounded once to float: correctly rounded but for rare double
// roundings, so within an ulp of libm's expm1f / log1pf.  Lanes outside the
// supported domain are marked in `bad` (the caller computes them with libm).
template <int B>
struct SimdF32Math {
    using S = Simd<float, B>;
    using V = typename S::V;
    using M = typename S::M;
    static constexpr int W = S::W;
    typedef double D __attribute__((vector_size(2 * B)));
    typedef int64_t L __attribute__((vector_size(2 * B)));

    static NC_INLINE D splat(double x) { return D{} + x; }

    // expm1(x) for |x| <= 0.5 (Taylor series to x^13: relative error < 1e-13).
    static NC_INLINE V expm1(V xf, M& bad) {
        const D x = __builtin_convertvector(xf, D);
        const L ok = (x <= splat(0.5)) & (x >= splat(-0.5));
        bad |= __builtin_convertvector(~ok, M);
        D p = splat(1.0 / 6227020800.0);  // 1/13!
        const double c[] = {1.0 / 479001600.0, 1.0 / 39916800.0, 1.0 / 3628800.0,
                            1.0 / 362880.0,    1.0 / 40320.0,    1.0 / 5040.0,
                            1.0 / 720.0,       1.0 / 120.0,      1.0 / 24.0,
                            1.0 / 6.0,         0.5,              1.0};
        for (double ck : c) p = p * x + ck;
        return __builtin_convertvector(p * x, V);
    }

    // log1p(y) for -1 < y <= 0.
    static NC_INLINE V log1p(V yf, M& bad) {
        const D y = __builtin_convertvector(yf, D);
        const L ok = (y > splat(-1.0)) & (y <= splat(0.0));
        bad |= __builtin_convertvector(~ok, M);
        // tiny |y|: y - y^2/2 + y^3/3 - y^4/4 (relative error < 1e-16 for |y| < 1e-4)
        const D tiny = y * (splat(1.0) + y * (splat(-0.5) + y * (splat(1.0 / 3) + y * -0.25)));
        // else u = 1 + y (exact for float y with |y| >= 1e-4), u = m * 2^e with
        // m in [sqrt(1/2), sqrt(2)), log(u) = e ln2 + 2 atanh((m - 1) / (m + 1))
        const D u = ok ? splat(1.0) + y : splat(1.0);  // keep bad lanes finite
        L bits;
        std::memcpy(&bits, &u, sizeof bits);
        L ebits = (bits >> 52) & 0x7ff;
        L mbits = (bits & 0x000fffffffffffffLL) | 0x3ff0000000000000LL;
        D m;
        std::memcpy(&m, &mbits, sizeof m);
        const L big = m > splat(1.4142135623730951);
        m = big ? m * 0.5 : m;
        ebits = ebits + (big & 1);
        // exponent as a double: 2^52 + e_biased, minus 2^52, minus the bias
        L ed_bits = ebits | 0x4330000000000000LL;
        D e;
        std::memcpy(&e, &ed_bits, sizeof e);
        e = e - 4503599627370496.0 - 1023.0;
        const D s = (m - 1.0) / (m + 1.0), s2 = s * s;
        D p = splat(1.0 / 19);
        const double c[] = {1.0 / 17, 1.0 / 15, 1.0 / 13, 1.0 / 11, 1.0 / 9,
                            1.0 / 7,  1.0 / 5,  1.0 / 3,  1.0};
        for (double ck : c) p = p * s2 + ck;
        const D big_y = e * 0.6931471805599453 + 2.0 * s * p;
        const L small = (y > splat(-1e-4));
        return __builtin_convertvector(small ? tiny : big_y, V);
    }
};

}  // namespace nc
