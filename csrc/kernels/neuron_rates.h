// Rate-neuron math for training: the smooth rate equivalents of the native
// neuron types and their derivatives dr/dJ, shared by host and device (the
// TensorFlow ops in csrc/tf/ use it; forward rates reuse neurons.h exactly).
#pragma once
#include <cmath>

#include "../common/host_device.h"
#include "neurons.h"

namespace nc {
namespace rates {

using std::exp;
using std::log;
using std::log1p;
using std::tanh;

// d/dJ lif_rate: r = a / (tau_ref + tau_rc * log1p(1 / j)), j = J - 1 > 0
//   dr/dJ = a * tau_rc / (d^2 * j * (j + 1)),  d = tau_ref + tau_rc * log1p(1 / j).
template <typename T>
NC_HD T lif_rate_grad(T J, T tau_rc, T tau_ref, T amplitude) {
    const T j = J - T(1);
    if (!(j > T(0))) return T(0);
    const T d = tau_ref + tau_rc * log1p(T(1) / j);
    return amplitude * tau_rc / (d * d * j * (j + T(1)));
}

using neurons::soft_lif_q;
using neurons::soft_lif_rate;

template <typename T>
NC_HD T soft_lif_rate_grad(T J, T tau_rc, T tau_ref, T amplitude, T sigma) {
    T dq;
    const T d = tau_ref + tau_rc * soft_lif_q(J, sigma, dq);
    return -amplitude * tau_rc * dq / (d * d);
}

// NengoDL's LeakyReLU: amplitude for J > 0, amplitude * negative_slope at and
// below 0 (TensorFlow's tf.nn.leaky_relu gradient, so training a converted
// Keras model follows Keras exactly when an input sits at 0, as a dead ReLU
// layer before it gives).
template <typename T>
NC_HD T leaky_relu_grad(T J, T amplitude, T negative_slope) {
    return J > T(0) ? amplitude : amplitude * negative_slope;
}

// RectifiedLinear: amplitude for J > 0 (0 at and below 0).
template <typename T>
NC_HD T rectified_linear_grad(T J, T amplitude) {
    return J > T(0) ? amplitude : T(0);
}

// Sigmoid: r = (1 / tau_ref) s(J), dr/dJ = (1 / tau_ref) s (1 - s).
template <typename T>
NC_HD T sigmoid_grad(T J, T tau_ref) {
    const T s = T(1) / (T(1) + exp(-J));
    return (T(1) / tau_ref) * s * (T(1) - s);
}

// Tanh: r = (1 / tau_ref) tanh(J), dr/dJ = (1 / tau_ref) (1 - tanh^2).
template <typename T>
NC_HD T tanh_grad(T J, T tau_ref) {
    const T t = tanh(J);
    return (T(1) / tau_ref) * (T(1) - t * t);
}

// The rate kinds of the TensorFlow op NcNeuronRate (attr `kind`), with their
// per-neuron parameters p[0..3]:
enum Kind : int {
    kLifRate = 0,         // tau_rc, tau_ref, amplitude
    kSoftLifRate = 1,     // tau_rc, tau_ref, amplitude, sigma
    kRectifiedLinear = 2, // amplitude
    kSigmoid = 3,         // tau_ref
    kTanh = 4,            // tau_ref
    kLeakyRelu = 5,       // amplitude, negative_slope
};

template <typename T>
NC_HD T rate(int kind, T J, const T* p) {
    switch (kind) {
        case kLifRate: return neurons::lif_rate(J, p[0], p[1], p[2]);
        case kSoftLifRate: return soft_lif_rate(J, p[0], p[1], p[2], p[3]);
        case kRectifiedLinear: return neurons::rectified_linear(J, p[0]);
        case kSigmoid: return neurons::sigmoid(J, p[0]);
        case kLeakyRelu: return neurons::leaky_relu(J, p[0], p[1]);
        default: return neurons::tanh_rate(J, p[0]);
    }
}

template <typename T>
NC_HD T rate_grad(int kind, T J, const T* p) {
    switch (kind) {
        case kLifRate: return lif_rate_grad(J, p[0], p[1], p[2]);
        case kSoftLifRate: return soft_lif_rate_grad(J, p[0], p[1], p[2], p[3]);
        case kRectifiedLinear: return rectified_linear_grad(J, p[0]);
        case kSigmoid: return sigmoid_grad(J, p[0]);
        case kLeakyRelu: return leaky_relu_grad(J, p[0], p[1]);
        default: return tanh_grad(J, p[0]);
    }
}

}  // namespace rates
}  // namespace nc
