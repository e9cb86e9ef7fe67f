// Linear filter (LTI synapse) math for one filtered element and one time step,
// shared by host and device.  Each function repeats the arithmetic of one Step
// class of nengo.LinearFilter (nengo/synapses.py), in the same order and the
// same precision as NumPy evaluates it there, so that float64 matches Nengo to
// rounding and float32 matches Nengo run on float32 signals:
//
// - NoX, OneX: NumPy arrays of T times Python floats stay in T;
// - OneXScalar: Python float math (double), stored as T;
// - NoD, General: the float64 matrices promote everything to double.
//
// Outputs are written with `write_output`, which mirrors `output[...] = y`
// (set / update modes) and `output[...] += y` (inc mode).
#pragma once
#include <cstdint>

#include "../common/host_device.h"

namespace nc {
namespace filters {

// Step forms, as chosen by LinearFilter.make_step.
enum Form : int64_t { kNoX = 0, kOneX = 1, kOneXScalar = 2, kNoD = 3, kGeneral = 4 };

// output = y, or output += y (computed in the wider of T and V, as NumPy does).
template <typename T, typename V>
NC_HD void write_output(T& out, V y, bool inc) {
    out = inc ? static_cast<T>(out + y) : static_cast<T>(y);
}

// NoX: y = d * u.
template <typename T>
NC_HD T no_state(T d, T u) {
    return d * u;
}

// OneX: X *= a; X += b * u; y = X.
template <typename T>
NC_HD T one_state(T& x, T a, T b, T u) {
    x *= a;
    x += b * u;
    return x;
}

// OneXScalar: X[:] = a * X.item() + b * u.item(); y = X.
template <typename T>
NC_HD T one_state_scalar(T& x, double a, double b, T u) {
    x = static_cast<T>(a * static_cast<double>(x) + b * static_cast<double>(u));
    return x;
}

// sum_i row[i * row_stride] * x[i * x_stride], accumulated from i = 0 (np.dot's order).
template <typename T>
NC_HD double dot_state(int64_t n, const double* row, int64_t row_stride, const T* x,
                       int64_t x_stride) {
    double acc = 0.0;
    for (int64_t i = 0; i < n; ++i)
        acc += row[i * row_stride] * static_cast<double>(x[i * x_stride]);
    return acc;
}

// State-space forms with n >= 1 states.  The element's state X[i] lies at
// x[i * xs]; A is n x n row-major, B and C have n entries; tmp holds n doubles.
//   NoD:     X = A X + B u;  y = C X
//   General: y = C X + D u;  X = A X + B u
// Returns y in double (the caller writes it with write_output).
template <typename T>
NC_HD double state_space(int64_t n, const double* A, const double* B, const double* C,
                         double D, bool general, T* x, int64_t xs, T u, double* tmp) {
    const double ud = static_cast<double>(u);
    double y = 0.0;
    if (general) y = dot_state(n, C, 1, x, xs) + D * ud;
    for (int64_t j = 0; j < n; ++j) tmp[j] = dot_state(n, A + j * n, 1, x, xs) + B[j] * ud;
    for (int64_t j = 0; j < n; ++j) x[j * xs] = static_cast<T>(tmp[j]);
    if (!general) y = dot_state(n, C, 1, x, xs);
    return y;
}

}  // namespace filters
}  // namespace nc
