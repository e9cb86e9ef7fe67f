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

// The type of Simd<T, B>::K: AVX-512's mask registers at 64 bytes, else
// Simd's M (declared here again: a vector typedef passed as a template
// argument loses its vector attribute).
template <typename T, int B>
struct NativeMask {
    using I = std::conditional_t<sizeof(T) == 4, int32_t, int64_t>;
    typedef I type __attribute__((vector_size(B)));
};
#if defined(NC_HAVE_AVX512_BUILTINS)
template <>
struct NativeMask<float, 64> {
    using type = uint16_t;
};
template <>
struct NativeMask<double, 64> {
    using type = uint8_t;
};
#endif

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

    // Comparison masks in the CPU's own form: AVX-512's mask registers (an
    // integer of W bits) at 64 bytes, else M.  GCC keeps a 64-byte M as an
    // integer vector and converts it to a mask register and back around every
    // | & ~ and select (vpmovm2d, vpmovd2m); masks that are only combined
    // (| & ~, with a cast back to K after ~), selected by (kselect) and
    // listed (kbits) take K and need none of that.
    using K = typename NativeMask<T, B>::type;
    template <int P>
    static NC_INLINE K kcmp(V a, V b);
    static NC_INLINE V kselect(K k, V a, V b);  // k ? a : b
};

template <typename T, int B>
template <int P>
NC_INLINE typename Simd<T, B>::K Simd<T, B>::kcmp(V a, V b) {
#if defined(NC_HAVE_AVX512_BUILTINS)
    if constexpr (B == 64) {
        if constexpr (sizeof(T) == 4)
            return __builtin_ia32_cmpps512_mask(a, b, P, 0xffff, _MM_FROUND_CUR_DIRECTION);
        else
            return __builtin_ia32_cmppd512_mask(a, b, P, 0xff, _MM_FROUND_CUR_DIRECTION);
    } else
#endif
    {
        return cmp<P>(a, b);
    }
}

template <typename T, int B>
NC_INLINE typename Simd<T, B>::V Simd<T, B>::kselect(K k, V a, V b) {
#if defined(NC_HAVE_AVX512_BUILTINS)
    if constexpr (B == 64) {
        if constexpr (sizeof(T) == 4)
            return __builtin_ia32_blendmps_512_mask(b, a, k);
        else
            return __builtin_ia32_blendmpd_512_mask(b, a, k);
    } else
#endif
    {
        return select(k, a, b);
    }
}

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

// kCompress for W lanes of 64 bits, as 2W lanes of 32 bits (lane i: 2i, 2i + 1).
template <int W>
struct CompressPairsTable {
    int32_t perm[1 << W][2 * W];
    constexpr CompressPairsTable() : perm{} {
        for (int bits = 0; bits < (1 << W); ++bits)
            for (int i = 0; i < W; ++i) {
                perm[bits][2 * i] = 2 * kCompress<W>.perm[bits][i];
                perm[bits][2 * i + 1] = 2 * kCompress<W>.perm[bits][i] + 1;
            }
    }
};
template <int W>
inline constexpr CompressPairsTable<W> kCompressPairs{};

// Bit i of the result: lane i of a comparison mask of 32-bit lanes.
template <int B>
NC_INLINE unsigned mask_bits32(typename Simd<float, B>::M m) {
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

// Bit i of the result: lane i of a comparison mask of 64-bit lanes.
template <int B>
NC_INLINE unsigned mask_bits64(typename Simd<double, B>::M m) {
#if defined(__SSE2__)
    if constexpr (B == 16 || B == 32) {  // SSE2's movmskpd per 16-byte half
        typedef double D2 __attribute__((vector_size(16)));
        D2 lo;
        std::memcpy(&lo, &m, 16);
        unsigned bits = static_cast<unsigned>(__builtin_ia32_movmskpd(lo));
        if constexpr (B == 32) {
            D2 hi;
            std::memcpy(&hi, reinterpret_cast<const char*>(&m) + 16, 16);
            bits |= static_cast<unsigned>(__builtin_ia32_movmskpd(hi)) << 2;
        }
        return bits;
    }
#endif
#if defined(NC_HAVE_AVX512_BUILTINS)
    if constexpr (B == 64) return static_cast<uint8_t>(__builtin_ia32_cvtq2mask512((__v8di)m));
#endif
    unsigned bits = 0;
    for (int i = 0; i < Simd<double, B>::W; ++i) bits |= static_cast<unsigned>(m[i] & 1) << i;
    return bits;
}

// Bit i of the result: lane i of a comparison mask of T lanes.
template <typename T, int B>
NC_INLINE unsigned mask_bits(typename Simd<T, B>::M m) {
    if constexpr (sizeof(T) == 8)
        return mask_bits64<B>(m);
    else
        return mask_bits32<B>(m);
}

// Bit i of the result: lane i of a mask in the CPU's own form (Simd::K).
template <typename T, int B>
NC_INLINE unsigned kmask_bits(typename Simd<T, B>::K k) {
    if constexpr (std::is_integral_v<typename Simd<T, B>::K>)
        return k;
    else
        return mask_bits<T, B>(k);
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

// The lanes of v that `bits` selects (mask_bits), moved in order to its
// first lanes; the others are unspecified.  64 bytes: AVX-512's compress
// instruction (a table of permutations for 16 lanes would take 4 MB); else a
// permutation from kCompress (64-bit lanes: of their 32-bit halves).
template <typename T, int B>
NC_INLINE typename Simd<T, B>::V compress(typename Simd<T, B>::V v, unsigned bits) {
    using V = typename Simd<T, B>::V;
    if constexpr (sizeof(T) == 8) {
#if defined(NC_HAVE_AVX512_BUILTINS)
        if constexpr (B == 64) {
            const auto k = static_cast<uint8_t>(bits);
            if constexpr (std::is_same_v<T, double>)
                return __builtin_ia32_compressdf512_mask(v, V{}, k);
            else
                return (V)__builtin_ia32_compressdi512_mask((__v8di)v, __v8di{}, k);
        }
#endif
        typename Simd<float, B>::V halves;
        std::memcpy(&halves, &v, B);
        halves = permute<float, B>(halves, kCompressPairs<Simd<T, B>::W>.perm[bits]);
        V r;
        std::memcpy(&r, &halves, B);
        return r;
    } else {
#if defined(NC_HAVE_AVX512_BUILTINS)
        if constexpr (B == 64) {
            const auto k = static_cast<uint16_t>(bits);
            if constexpr (std::is_same_v<T, float>)
                return __builtin_ia32_compresssf512_mask(v, V{}, k);
            else
                return __builtin_ia32_compresssi512_mask(v, V{}, k);
        }
#endif
        if constexpr (B <= 32) {
            return permute<T, B>(v, kCompress<Simd<T, B>::W>.perm[bits]);
        } else {  // no table for 16 lanes
            V r = v;
            int c = 0;
            for (int i = 0; i < Simd<T, B>::W; ++i)
                if (bits >> i & 1) r[c++] = v[i];
            return r;
        }
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
