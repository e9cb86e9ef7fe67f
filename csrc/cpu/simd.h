// Explicit SIMD for the hot CPU kernels, with GCC/Clang vector extensions.
//
// `Simd<T, B>` is a vector of B bytes of T: B = 16 compiles to SSE2 (or NEON),
// B = 32 to AVX2 inside functions marked NC_TARGET_AVX2, B = 64 to AVX-512
// inside functions marked NC_TARGET_AVX512.  Kernels are templates on B;
// `simd_level()` (and `cpu_has_avx2()`) pick the instantiation at run time, so
// the module still runs on any x86-64 (or other) CPU.
//
// Element-wise vector arithmetic rounds exactly as scalar arithmetic does, and
// the build disables FMA contraction (-ffp-contract=off) outside the dense
// product kernels, so vectorised neuron updates stay bit-identical to the
// scalar ones (and float64 to Nengo).
#pragma once
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <type_traits>
#include <utility>

#define NC_INLINE inline __attribute__((always_inline))

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define NC_HAVE_AVX2_DISPATCH 1
// GCC's AVX-512 builtins, used raw (they expand in the AVX-512 function they
// are inlined into; the intrinsics' wrappers would not inline into templates
// compiled for the base target)
#if !defined(__clang__)
#include <immintrin.h>
#define NC_HAVE_AVX512_BUILTINS 1
#endif
#define NC_TARGET_AVX2 __attribute__((target("avx2,fma")))
// AVX-512 F/VL/DQ/BW (Skylake-SP and later Xeons, Zen 4 and later): 32 vector
// registers of 64 bytes.  Only the kernels bound by multiply-adds use it.
#define NC_TARGET_AVX512 __attribute__((target("avx512f,avx512vl,avx512dq,avx512bw,avx2,fma")))
#else
#define NC_HAVE_AVX2_DISPATCH 0
#define NC_TARGET_AVX2
#define NC_TARGET_AVX512
#endif

// x in every lane of vector type V, for a value loaded in a hot loop: the
// expression, written where it is used, compiles to one vbroadcast in an AVX2
// kernel.  Simd::splat, a function of its own, is compiled for the base
// target before it is inlined: GCC then assembles a 32-byte broadcast from
// halves lane by lane (or, for `V{} + x`, adds 0 first).  x - 0 == x for every
// x, -0 included.
#define NC_BROADCAST(V, x) ((x) - V{})

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
    static NC_INLINE bool any(M m);

    // Comparisons whose mask is kept (stored, combined with & | ~) and
    // selects by such masks.  A kernel template is compiled for the base
    // target and then inlined into its AVX2 or AVX-512 instantiation; GCC 12
    // gives a 64-byte comparison kept as an integer vector (and a select by
    // one) the base target's form and expands it lane by lane, which made the
    // LIF kernel at 16 lanes 5-9x slower than at 8.  AVX-512's builtins expand
    // where they are inlined.  Other widths (and selects on a comparison
    // written in place: `a < b ? x : y`) use the operators.
    static NC_INLINE M lt(V a, V b) { return cmp<kLt>(a, b); }
    static NC_INLINE M le(V a, V b) { return cmp<kLe>(a, b); }
    static NC_INLINE M gt(V a, V b) { return cmp<kGt>(a, b); }
    static NC_INLINE M ge(V a, V b) { return cmp<kGe>(a, b); }
    static NC_INLINE M eq(V a, V b) { return cmp<kEq>(a, b); }
    static NC_INLINE V select(M m, V a, V b);  // m ? a : b

    // AVX-512 predicates (ordered, quiet: false for NaN, as C's operators)
    enum Pred : int { kEq = 0x00, kLt = 0x01, kLe = 0x02, kGe = 0x1d, kGt = 0x1e };
    template <int P>
    static NC_INLINE M cmp(V a, V b);
};

template <typename T, int B>
template <int P>
NC_INLINE typename Simd<T, B>::M Simd<T, B>::cmp(V a, V b) {
#if defined(NC_HAVE_AVX512_BUILTINS)
    if constexpr (B == 64 && sizeof(T) == 4)
        return (M)__builtin_ia32_cvtmask2d512(
            __builtin_ia32_cmpps512_mask(a, b, P, 0xffff, _MM_FROUND_CUR_DIRECTION));
    if constexpr (B == 64 && sizeof(T) == 8)
        return (M)__builtin_ia32_cvtmask2q512(
            __builtin_ia32_cmppd512_mask(a, b, P, 0xff, _MM_FROUND_CUR_DIRECTION));
#endif
    if constexpr (P == kEq) return a == b;
    else if constexpr (P == kLt) return a < b;
    else if constexpr (P == kLe) return a <= b;
    else if constexpr (P == kGe) return a >= b;
    else return a > b;
}

template <typename T, int B>
NC_INLINE typename Simd<T, B>::V Simd<T, B>::select(M m, V a, V b) {
#if defined(NC_HAVE_AVX512_BUILTINS)
    if constexpr (B == 64 && sizeof(T) == 4)
        return __builtin_ia32_blendmps_512_mask(b, a, __builtin_ia32_cvtd2mask512(m));
    if constexpr (B == 64 && sizeof(T) == 8)
        return __builtin_ia32_blendmpd_512_mask(b, a, __builtin_ia32_cvtq2mask512((__v8di)m));
#endif
    return m ? a : b;
}

// OR of the lanes of an integer vector, by halving (a few instructions, where
// extracting lane by lane would take one per lane).
template <typename I, int B>
NC_INLINE uint64_t or_lanes(const void* v) {
    if constexpr (B == 8) {
        uint64_t w;
        std::memcpy(&w, v, 8);
        return sizeof(I) == 4 ? (w | (w >> 32)) & 0xffffffffu : w;
    } else {
        typedef I H __attribute__((vector_size(B / 2)));
        H lo, hi;
        std::memcpy(&lo, v, B / 2);
        std::memcpy(&hi, static_cast<const char*>(v) + B / 2, B / 2);
        const H both = lo | hi;
        return or_lanes<I, B / 2>(&both);
    }
}

template <typename T, int B>
NC_INLINE bool Simd<T, B>::any(M m) {
#if defined(__SSE2__)
    if constexpr (B == 16 || B == 32) {
        // OR the 16-byte halves, then SSE2's byte sign-bit mask (baseline
        // x86-64, so no target attribute needed): 3 instructions for 8 lanes
        typedef char C __attribute__((vector_size(16)));
        C lo;
        std::memcpy(&lo, &m, 16);
        if constexpr (B == 32) {
            C hi;
            std::memcpy(&hi, reinterpret_cast<const char*>(&m) + 16, 16);
            lo |= hi;
        }
        return __builtin_ia32_pmovmskb128(lo) != 0;
    }
#endif
    return or_lanes<I, B>(&m) != 0;
}

// The vector {a[idx[0]], ..., a[idx[W - 1]]}, built in registers.
template <typename T, int B, size_t... I>
NC_INLINE typename Simd<T, B>::V gather_lanes(const T* a, const int32_t* idx,
                                              std::index_sequence<I...>) {
    return typename Simd<T, B>::V{a[idx[I]]...};
}
template <typename T, int B>
NC_INLINE typename Simd<T, B>::V gather(const T* a, const int32_t* idx) {
    return gather_lanes<T, B>(a, idx, std::make_index_sequence<Simd<T, B>::W>{});
}

// a[0] in every lane when `uniform`, else gather(a, idx).
template <typename T, int B>
NC_INLINE typename Simd<T, B>::V gather_or_splat(bool uniform, const T* a, const int32_t* idx) {
    return uniform ? Simd<T, B>::splat(a[0]) : gather<T, B>(a, idx);
}

// Lane compaction: the lanes of a vector that a mask selects, moved in order
// to its first lanes by one permutation (AVX2: vpermps / vpermd), looked up
// by the mask's bits.  Stored at the end of a list, it appends those lanes.
template <int W>
struct CompressTable {
    int32_t perm[1 << W][W];
    constexpr CompressTable() : perm{} {
        for (int bits = 0; bits < (1 << W); ++bits) {
            int c = 0;
            for (int i = 0; i < W; ++i)
                if (bits >> i & 1) perm[bits][c++] = i;
            // unselected lanes: lane 0, any lane would do (overwritten next)
        }
    }
};
template <int W>
inline constexpr CompressTable<W> kCompress{};

// Bit i of the result: lane i of a comparison mask of float32 lanes.
template <int B>
NC_INLINE unsigned mask_bits(typename Simd<float, B>::M m) {
#if defined(__SSE__)
    if constexpr (B == 16 || B == 32) {
        // SSE's movmskps per 16-byte half (baseline x86-64, no target needed)
        typedef float F4 __attribute__((vector_size(16)));
        F4 lo;
        std::memcpy(&lo, &m, 16);
        unsigned bits = static_cast<unsigned>(__builtin_ia32_movmskps(lo));
        if constexpr (B == 32) {
            F4 hi;
            std::memcpy(&hi, reinterpret_cast<const char*>(&m) + 16, 16);
            bits |= static_cast<unsigned>(__builtin_ia32_movmskps(hi)) << 4;
        }
        return bits;
    }
#endif
#if defined(NC_HAVE_AVX512_BUILTINS)
    if constexpr (B == 64) return static_cast<uint16_t>(__builtin_ia32_cvtd2mask512(m));  // AVX-512 DQ
#endif
    unsigned bits = 0;
    for (int i = 0; i < Simd<float, B>::W; ++i) bits |= static_cast<unsigned>(m[i] & 1) << i;
    return bits;
}

// The lanes of v in the order of `perm` (a row of kCompress).
template <typename T, int B>
NC_INLINE typename Simd<T, B>::V permute(typename Simd<T, B>::V v, const int32_t* perm) {
    typename Simd<float, B>::M idx;  // int32 lanes: the index type of 32-bit lanes
    std::memcpy(&idx, perm, sizeof idx);
#if defined(__clang__)
    typename Simd<T, B>::V r;
    for (int i = 0; i < Simd<T, B>::W; ++i) r[i] = v[idx[i]];
    return r;
#else
    return __builtin_shuffle(v, idx);
#endif
}

// The lanes of v (32-bit T) that `bits` selects (mask_bits), moved in order
// to its first lanes; the others are unspecified.  64 bytes: AVX-512's
// compress instruction (a table of permutations for 16 lanes would take 4 MB);
// else a permutation from kCompress.
template <typename T, int B>
NC_INLINE typename Simd<T, B>::V compress(typename Simd<T, B>::V v, unsigned bits) {
    static_assert(sizeof(T) == 4, "32-bit lanes");
#if defined(NC_HAVE_AVX512_BUILTINS)
    if constexpr (B == 64) {
        const auto k = static_cast<uint16_t>(bits);
        if constexpr (std::is_same_v<T, float>)
            return __builtin_ia32_compresssf512_mask(v, typename Simd<T, B>::V{}, k);
        else
            return __builtin_ia32_compresssi512_mask(v, typename Simd<T, B>::V{}, k);
    }
#endif
    if constexpr (B <= 32) {
        return permute<T, B>(v, kCompress<Simd<T, B>::W>.perm[bits]);
    } else {  // no table for 16 lanes
        typename Simd<T, B>::V r = v;
        int c = 0;
        for (int i = 0; i < Simd<T, B>::W; ++i)
            if (bits >> i & 1) r[c++] = v[i];
        return r;
    }
}

// The widest SIMD code the kernels may use: a cap on what the CPU runs, set
// by tests (`_native.set_simd_level`, to run every instantiation on one
// machine) and by NC_SIMD=baseline|avx2|avx512 in the environment (read when
// the module loads).  Instructions choose when they are built or per call.
enum SimdLevel : int { kSimdBaseline = 0, kSimdAvx2 = 1, kSimdAvx512 = 2 };

inline constexpr const char* kSimdLevelNames[] = {"baseline", "avx2", "avx512"};

// The level called `name` (kSimdLevelNames), or -1.
inline int simd_level_named(const char* name) {
    for (int level = kSimdBaseline; level <= kSimdAvx512; ++level)
        if (std::strcmp(name, kSimdLevelNames[level]) == 0) return level;
    return -1;
}

inline int simd_level_from_env() {
    const char* v = std::getenv("NC_SIMD");
    const int level = v != nullptr ? simd_level_named(v) : -1;
    return level >= 0 ? level : kSimdAvx512;  // unset or unknown: no cap (bindings warn)
}

inline std::atomic<int>& simd_level_cap() {
    static std::atomic<int> cap{simd_level_from_env()};
    return cap;
}

// The best level this CPU runs (checked once).
inline int cpu_simd_level() {
#if NC_HAVE_AVX2_DISPATCH
    static const int level = []() -> int {
        if (!(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")))
            return kSimdBaseline;
        const bool avx512 = __builtin_cpu_supports("avx512f") &&
                            __builtin_cpu_supports("avx512vl") &&
                            __builtin_cpu_supports("avx512dq") &&
                            __builtin_cpu_supports("avx512bw");
        return avx512 ? kSimdAvx512 : kSimdAvx2;
    }();
    return level;
#else
    return kSimdBaseline;
#endif
}

// The level kernels use now: the CPU's, at most the cap.
inline int simd_level() {
    return std::min(cpu_simd_level(), simd_level_cap().load(std::memory_order_relaxed));
}

// True when kernels may run AVX2 and FMA code.
inline bool cpu_has_avx2() { return simd_level() >= kSimdAvx2; }

// Runs f() compiled for AVX2 when cpu_has_avx2(), else for the baseline
// target: for element-wise loops that GCC vectorises itself (the module is
// built for baseline x86-64, so they would run 16-byte vectors on every CPU).
// f must be an always-inline lambda (`[&]() NC_LAMBDA { ... }`): each of the
// two functions below then compiles its own copy for its target.  Only
// pointers and scalars cross the calls, so targets never disagree on how a
// vector is passed; results are the same bit for bit (no FMA contraction).
#define NC_LAMBDA __attribute__((always_inline))
template <typename F>
NC_TARGET_AVX2 __attribute__((noinline)) void run_avx2(const F& f) {
    f();
}
template <typename F>
__attribute__((noinline)) void run_baseline(const F& f) {
    f();
}
template <typename F>
NC_INLINE void with_simd(const F& f) {
    if (cpu_has_avx2())
        run_avx2(f);
    else
        run_baseline(f);
}

}  // namespace nc

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

    static NC_INLINE bool all(L m) {
        int64_t acc = -1;
        for (int i = 0; i < H; ++i) acc &= m[i];
        return acc != 0;
    }

    // expm1(x) for |x| <= 1/4: Taylor series (relative error < 1e-11), to x^6
    // when every |x| <= 1/16 (LIF with dt << tau_rc), else to x^9; evaluated
    // in Estrin's scheme (short dependency chains).
    static NC_INLINE D expm1_d(D x, L& bad) {
        bad = ~(SD::le(x, splat(0.25)) & SD::ge(x, splat(-0.25)));
        const D x2 = x * x, x4 = x2 * x2;
        const D p01 = splat(1.0) + x * 0.5;                    // 1 + x/2
        const D p23 = splat(1.0 / 6) + x * (1.0 / 24);         // x^2 (1/3! + x/4!)
        const D p45 = splat(1.0 / 120) + x * (1.0 / 720);      // x^4 (...)
        if (all(SD::le(x, splat(1.0 / 16)) & SD::ge(x, splat(-1.0 / 16))))
            return x * ((p01 + x2 * p23) + x4 * p45);
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
        // 2 atanh(s) = 2 (s + s^3/3 + ... + s^13/13), |s| <= 0.1716, to s^9/9 when
        // every |s| <= 0.07 (relative error < 1e-12; Estrin in s^2)
        const D s = (m - 1.0) / (m + 1.0), z = s * s, z2 = z * z, z4 = z2 * z2;
        const D q0 = (splat(1.0) + z * (1.0 / 3)) + z2 * (splat(1.0 / 5) + z * (1.0 / 7));
        const D q = all(SD::le(z, splat(0.0049)))
                        ? q0 + z4 * (1.0 / 9)
                        : q0 + z4 * ((splat(1.0 / 9) + z * (1.0 / 11)) + z2 * (1.0 / 13));
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

}  // namespace nc

namespace nc {

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

}  // namespace nc
