// Contiguous segments: where a merged instruction's per-element address arrays
// all advance by one, the kernel can use plain pointers (and the compiler can
// vectorise) instead of gathering every operand through its address.
#pragma once
#include <cstring>
#include <cstdint>
#include <vector>

namespace nc {

// A run of elements [k0, k0 + len) over which every operand's address is
// consecutive and stays on one side of the shared/state boundary.
struct Segment {
    int64_t k0 = 0, len = 0;
    bool uniform = false;  // the instruction's per-element parameters are equal here
};

// True when address a continues a run ending at prev (not across the boundary).
inline bool continues(int64_t prev, int64_t a, int64_t n_shared) {
    return a == prev + 1 && a != n_shared;
}

// Splits the elements of parallel address arrays into `Segment`s of at most
// `max_len` elements; `cut(k)` may force a segment to start at element k.
// Returns an empty vector when the segments would be too short on average
// (fewer than `min_mean` elements) to beat per-element gathers.
template <typename Cut>
std::vector<Segment> contiguous_segments(
    const std::vector<const std::vector<int64_t>*>& operands, int64_t n_shared,
    int64_t max_len, int64_t min_mean, Cut cut_at) {
    std::vector<Segment> out;
    if (operands.empty()) return out;
    const int64_t n = static_cast<int64_t>(operands.front()->size());
    int64_t start = 0;
    for (int64_t k = 1; k <= n; ++k) {
        bool cut = k == n || k - start >= max_len || cut_at(k);
        for (size_t i = 0; !cut && i < operands.size(); ++i) {
            cut = !continues((*operands[i])[k - 1], (*operands[i])[k], n_shared);
        }
        if (cut) {
            out.push_back({start, k - start, false});
            start = k;
        }
    }
    if (out.empty() || n < min_mean * static_cast<int64_t>(out.size())) out.clear();
    return out;
}

inline std::vector<Segment> contiguous_segments(
    const std::vector<const std::vector<int64_t>*>& operands, int64_t n_shared,
    int64_t max_len, int64_t min_mean = 8) {
    return contiguous_segments(operands, n_shared, max_len, min_mean,
                               [](int64_t) { return false; });
}

// Marks the segments over which every array in `params` holds one value (bit
// for bit: -0.0 and 0.0 differ, a NaN equals itself).
template <typename P>
void mark_uniform(std::vector<Segment>& segments, const std::vector<const std::vector<P>*>& params) {
    for (auto& seg : segments) {
        seg.uniform = true;
        for (const auto* p : params)
            for (int64_t k = seg.k0 + 1; seg.uniform && k < seg.k0 + seg.len; ++k)
                seg.uniform = std::memcmp(&(*p)[k], &(*p)[seg.k0], sizeof(P)) == 0;
    }
}

}  // namespace nc
