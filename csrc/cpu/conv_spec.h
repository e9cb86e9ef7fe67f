// The geometry of a conv_inc instruction from its spec, checked: read by the
// CPU factory (instr_conv.cpp) and the device loader alike.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>

#include "../kernels/conv.h"
#include "program.h"

namespace nc {
namespace conv {

// Reads `axes` (per spatial axis, three axes: output positions, input
// positions, kernel size, stride, padding before the forward convolution's
// input), `transpose`, the strides and the channels; throws naming the
// instruction where a value is out of range.
inline Geometry geometry_from(const InstrSpec& spec) {
    const std::string k = spec.kind + ": ";
    auto scalar = [&](const char* name) { return static_cast<int64_t>(spec.scalar(name)); };
    const auto& axes = spec.int_array("axes");
    if (axes.size() != 5 * kMaxAxes)
        throw std::invalid_argument(k + "axes must hold 5 values for each of " +
                                    std::to_string(kMaxAxes) + " spatial axes");
    constexpr int64_t kAxisMax = int64_t(1) << 30, kProductMax = int64_t(1) << 31;
    Geometry g;
    int* fields[5] = {g.rows, g.cols, g.taps, g.stride, g.pad};
    for (int a = 0; a < kMaxAxes; ++a)
        for (int f = 0; f < 5; ++f) {
            const int64_t v = axes[5 * a + f];
            if (v < (f == 4 ? 0 : 1) || v >= kAxisMax)
                throw std::invalid_argument(k + "axis sizes, strides and padding must lie in [1, 2^30) " +
                                            "(padding in [0, 2^30))");
            fields[f][a] = static_cast<int>(v);
        }
    if (g.out_positions() >= kProductMax || g.in_positions() >= kProductMax ||
        g.n_taps() >= kProductMax)
        throw std::invalid_argument(k + "more than 2^31 positions or kernel taps");
    g.transpose = spec.scalar("transpose", 0.0) != 0.0;
    g.x_ps = scalar("X_ps");
    g.x_cs = scalar("X_cs");
    g.y_ps = scalar("Y_ps");
    g.y_cs = scalar("Y_cs");
    g.filters = scalar("filters");
    const int64_t groups = scalar("groups"), in_ch = scalar("in_channels");
    if (groups < 1 || g.filters < 1 || in_ch < 1 || in_ch % groups != 0 ||
        g.filters % groups != 0)
        throw std::invalid_argument(k + "bad channels, filters or groups");
    g.cg = in_ch / groups;
    g.fpg = g.filters / groups;
    g.finish();
    return g;
}

// The pairs of all output positions, and the most of one position.
struct PairCounts {
    int64_t total = 0, most = 0;
};
inline PairCounts pair_counts(const Geometry& g) {
    PairCounts c;
    for (int64_t o = 0; o < g.out_positions(); ++o) {
        const int64_t n = row(g, o).size();
        c.total += n;
        c.most = n > c.most ? n : c.most;
    }
    return c;
}

}  // namespace conv
}  // namespace nc
