// Learning-rule math (PES, BCM, Oja, Voja, RLS), shared by host and device.
//
// Every rule computes a weight change delta[j, i] for post index j and pre
// index i as an outer-product-like expression.  Each is split into a per-row
// factor (depends on j only, computed once per row) and a per-element update,
// with the operation order of the matching `make_step` in
// nengo/builder/learning_rules.py, so that float64 matches Nengo to rounding.
//
// The step coefficient alpha is computed in double from Python-level floats,
// as Nengo does, and only then rounded to T (NumPy casts a Python float to the
// array's dtype before multiplying).
#pragma once
#include <cstdint>

#include "../common/host_device.h"

namespace nc {
namespace learning {

// --- PES: delta = outer(alpha * error, pre), alpha = -learning_rate * dt / n_pre.
NC_HD double pes_alpha(double learning_rate, double dt, int64_t n_pre) {
    return -learning_rate * dt / static_cast<double>(n_pre);
}

template <typename T>
NC_HD T pes_row(T alpha, T error) {
    return alpha * error;
}

// --- BCM: delta = outer(alpha * post * (post - theta), pre), alpha = learning_rate * dt.
template <typename T>
NC_HD T bcm_row(T alpha, T post, T theta) {
    return alpha * post * (post - theta);
}

// PES and BCM element: the row factor times the presynaptic activity.
template <typename T>
NC_HD T outer_delta(T row, T pre) {
    return row * pre;
}

// --- Oja: delta = -beta * weights * (alpha * post^2)[:, None] + outer(alpha * post, pre).
template <typename T>
struct OjaRow {
    T forget;  // alpha * post * post
    T hebb;    // alpha * post
};

template <typename T>
NC_HD OjaRow<T> oja_row(T alpha, T post) {
    return {alpha * post * post, alpha * post};
}

template <typename T>
NC_HD T oja_delta(T neg_beta, T weight, const OjaRow<T>& row, T pre) {
    T d = neg_beta * weight * row.forget;
    d += row.hebb * pre;
    return d;
}

// --- Voja: delta = alpha * learning_signal
//                   * (scale[:, None] * outer(post, pre) - post[:, None] * encoders).
template <typename T>
NC_HD T voja_gain(T alpha, T learning_signal) {
    return alpha * learning_signal;
}

template <typename T>
NC_HD T voja_delta(T gain, T scale, T post, T pre, T encoder) {
    return gain * (scale * (post * pre) - post * encoder);
}

// --- RLS: r the filtered presynaptic activities (n), P the running estimate
// of the inverse correlation matrix (n x n, symmetric, simulation state):
//   Pr = P r;  g = 1 / (1 + r . Pr)
//   P[i, j] -= Pr[i] * (Pr[j] * g);  delta[k, j] = error[k] * (-g * Pr[j])
// (SimRLS.make_step's expressions, in its order; P r and r . Pr are sums from
// index 0, where NumPy's BLAS may add in another order: equal to rounding).
template <typename T>
NC_HD T rls_dot(int64_t n, const T* a, int64_t a_s, const T* b, int64_t b_s) {
    T acc = 0;
    for (int64_t i = 0; i < n; ++i) acc += a[i * a_s] * b[i * b_s];
    return acc;
}

template <typename T>
NC_HD T rls_gain(T r_dot_pr) {
    return T(1) / (T(1) + r_dot_pr);
}

template <typename T>
NC_HD T rls_p(T p, T pr_i, T pr_j, T gain) {
    return p - pr_i * (pr_j * gain);
}

template <typename T>
NC_HD T rls_delta(T error, T gain, T pr_j) {
    return error * (-gain * pr_j);
}

}  // namespace learning
}  // namespace nc
