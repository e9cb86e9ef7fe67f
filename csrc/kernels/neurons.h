// Neuron update math, one function per neuron type, shared by host and device.
//
// Each function updates ONE neuron for one time step, exactly as the matching
// `step` in nengo/neurons.py (same operation order, so float64 matches Nengo to
// rounding).  State is passed by reference; the return value is the output.
// Functions take `dt` in the neuron's precision T.  Spiking functions take the
// spike height (amplitude / dt) as the caller computed it in double, as Nengo
// does before rounding to float32 (1000.0, where a float32 division by
// float32(dt) gives 999.99994).
#pragma once
#include <cmath>

#include "../common/host_device.h"

namespace nc {
namespace neurons {

// The std overloads, so that T = float computes in float (as NumPy's float32
// ufuncs do) instead of promoting to the double C functions on the host.
using std::exp;
using std::expm1;
using std::floor;
using std::log;
using std::log1p;
using std::tanh;
using std::trunc;

// max(x, 0) as np.maximum: a NaN input stays NaN.
template <typename T>
NC_HD T rectify(T x) {
    return x < T(0) ? T(0) : x;
}

// RectifiedLinear: out = amplitude * max(0, J).
template <typename T>
NC_HD T rectified_linear(T J, T amplitude) {
    return amplitude * rectify(J);
}

// Sigmoid: out = (1 / tau_ref) / (1 + exp(-J)).
template <typename T>
NC_HD T sigmoid(T J, T tau_ref) {
    return (T(1) / tau_ref) / (T(1) + exp(-J));
}

// Tanh: out = (1 / tau_ref) * tanh(J).
template <typename T>
NC_HD T tanh_rate(T J, T tau_ref) {
    return (T(1) / tau_ref) * tanh(J);
}

// LIFRate: rate = amplitude / (tau_ref + tau_rc * log1p(1 / (J - 1))) for J > 1.
template <typename T>
NC_HD T lif_rate(T J, T tau_rc, T tau_ref, T amplitude) {
    const T j = J - T(1);
    return j > T(0) ? amplitude / (tau_ref + tau_rc * log1p(T(1) / j)) : T(0);
}

// NengoDL's LeakyReLU: out = amplitude * (J < 0 ? negative_slope * J : J).
template <typename T>
NC_HD T leaky_relu(T J, T amplitude, T negative_slope) {
    return amplitude * (J < T(0) ? negative_slope * J : J);
}

// NengoDL's SpikingLeakyReLU: v += (J < 0 ? negative_slope * J : J) * dt, then
// trunc(v) spikes (negative ones too) of height spike_height (amplitude / dt);
// v -= trunc(v).
template <typename T>
NC_HD T spiking_leaky_relu(T J, T& voltage, T dt, T spike_height, T negative_slope) {
    voltage += (J < T(0) ? negative_slope * J : J) * dt;
    const T n_spikes = trunc(voltage);
    voltage -= n_spikes;
    return spike_height * n_spikes;
}

// NengoDL's SoftLIFRate: the LIFRate curve with j = J - 1 replaced by
// z = sigma * softplus(j / sigma), smooth and positive everywhere:
//   rate = amplitude / (tau_ref + tau_rc * q),  q = log1p(1 / z);
// far below threshold (j / sigma <= -20) q = -j / sigma - log(sigma), its
// asymptote (1 / z overflows there); softplus(x) = x above 30.
// dq_dJ (for training's gradient, neuron_rates.h) is dq/dJ.
template <typename T>
NC_HD T soft_lif_q(T J, T sigma, T& dq_dJ) {
    const T js = (J - T(1)) / sigma;
    if (!(js > T(-20))) {
        dq_dJ = -T(1) / sigma;
        return -js - log(sigma);
    }
    const T z = (js > T(30) ? js : log1p(exp(js))) * sigma;
    const T dz_dJ = T(1) / (T(1) + exp(-js));  // softplus' = logistic
    dq_dJ = -dz_dJ / (z * (z + T(1)));
    return log1p(T(1) / z);
}

template <typename T>
NC_HD T soft_lif_rate(T J, T tau_rc, T tau_ref, T amplitude, T sigma) {
    T unused;
    return amplitude / (tau_ref + tau_rc * soft_lif_q(J, sigma, unused));
}

// Regular spiking from a rate (RegularSpiking; SpikingRectifiedLinear with
// rate = max(J, 0)): integrate v += dt * rate, emit floor(v) spikes of height
// spike_height (amplitude / dt), keep the fractional part: v -= floor(v).
template <typename T>
NC_HD T regular_spikes(T rate, T& voltage, T dt, T spike_height) {
    voltage += dt * rate;
    const T n_spikes = floor(voltage);
    voltage -= n_spikes;
    return spike_height * n_spikes;
}

// Stochastic spiking from a rate (StochasticSpiking): x = dt * rate (|rate|
// for types with negative rates), whole part n, fraction f = x - n (exact, as
// numpy's modf); one spike more when the step's uniform number u < f:
// out = spike_height * (n + (u < f)), times sign(rate) for negative types.
// (Infinite x: f is nan here, 0 in modf; no spike is added either way.)
template <typename T>
NC_HD T stochastic_spikes(T rate, T uniform, T dt, T spike_height, T negative) {
    const bool signed_rate = negative != T(0);
    const T x = dt * (signed_rate ? fabs(rate) : rate);
    T n_spikes = trunc(x);
    if (uniform < x - n_spikes) n_spikes += T(1);
    const T out = spike_height * n_spikes;
    if (!signed_rate) return out;
    // numpy's sign: 1, -1, 0 for either zero, nan for nan
    const T sign = rate > T(0) ? T(1) : rate < T(0) ? T(-1) : rate == T(0) ? T(0) : rate;
    return out * sign;
}

// SpikingRectifiedLinear: v += max(J, 0) * dt; spikes as `regular_spikes`.
template <typename T>
NC_HD T spiking_rectified_linear(T J, T& voltage, T dt, T spike_height) {
    return regular_spikes(rectify(J), voltage, dt, spike_height);
}

// The LIF voltage decay factor over a whole step, expm1(-dt / tau_rc).  It is
// the same for every step a neuron is not refractory, so kernels compute it once
// per neuron and pass it to lif_spiking (an exact shortcut, not an approximation).
template <typename T>
NC_HD T lif_full_step_decay(T dt, T tau_rc) {
    return expm1(-dt / tau_rc);
}

// The part of the step a neuron integrates (Nengo: (dt - refractory_time).clip(0, dt)),
// given its already decremented refractory time.
template <typename T>
NC_HD T lif_delta_t(T refractory_time, T dt) {
    const T delta_t = dt - refractory_time;
    return delta_t < T(0) ? T(0) : (delta_t > dt ? dt : delta_t);
}

// expm1(-delta_t / tau_rc) where no shortcut applies: a neuron refractory for
// part of the step (one of LIF's two rare branches).
template <typename T>
NC_HD T lif_partial_decay(T delta_t, T tau_rc) {
    return expm1(-delta_t / tau_rc);
}

// The decay's two exact shortcuts: delta_t == dt gives the very expression
// lif_full_step_decay evaluated, and delta_t == +0 (refractory all step) gives
// expm1(-0.0) == -0.0.  False where neither applies (decay then -0.0, to be
// replaced by lif_partial_decay).  Selects, not branches: device threads run
// it for many trials in a row.
template <typename T>
NC_HD bool lif_decay_shortcut(T delta_t, T dt, T full_decay, T& decay) {
    const bool full = delta_t == dt;
    decay = full ? full_decay : T(-0.0);
    return full || delta_t == T(0);
}

// expm1(-delta_t / tau_rc), by a shortcut where one applies.
template <typename T>
NC_HD T lif_decay(T delta_t, T dt, T tau_rc, T full_decay) {
    T decay;
    return lif_decay_shortcut(delta_t, dt, full_decay, decay) ? decay
                                                              : lif_partial_decay(delta_t, tau_rc);
}

// LIF's leaky integration with a given decay: v -= (J - v) * decay; true where
// the neuron spikes (v > 1, voltage left for lif_spike_refractory), else v is
// clipped at min_voltage.
template <typename T>
NC_HD bool lif_integrate(T J, T& voltage, T decay, T min_voltage) {
    voltage -= (J - voltage) * decay;
    const bool spiked = voltage > T(1);
    voltage = !spiked && voltage < min_voltage ? min_voltage : voltage;
    return spiked;
}

// The refractory time after a spike (LIF's other rare branch): tau_ref from
// the spike time interpolated within the step,
// t_spike = dt + tau_rc * log1p(-(v - 1) / (J - 1)).
template <typename T>
NC_HD T lif_spike_refractory(T J, T voltage, T dt, T tau_rc, T tau_ref) {
    const T t_spike = dt + tau_rc * log1p(-(voltage - T(1)) / (J - T(1)));
    return tau_ref + t_spike;
}

// LIF: leaky integration over the non-refractory part of the step, spike when
// v > 1, with the refractory period starting at the interpolated spike time.
// A spike is one output of spike_height (amplitude / dt).
// `full_decay` must be lif_full_step_decay(dt, tau_rc).  (Device kernels of
// many trials a thread run the same stages with the rare ones apart:
// kernel_neurons.h, NeuronStep::deferred.)
template <typename T>
NC_HD T lif_spiking(T J, T& voltage, T& refractory_time, T dt, T tau_rc, T tau_ref,
                    T min_voltage, T spike_height, T full_decay) {
    refractory_time -= dt;
    const T delta_t = lif_delta_t(refractory_time, dt);
    const T decay = lif_decay(delta_t, dt, tau_rc, full_decay);
    if (!lif_integrate(J, voltage, decay, min_voltage)) return T(0);
    refractory_time = lif_spike_refractory(J, voltage, dt, tau_rc, tau_ref);
    voltage = T(0);
    return spike_height;
}

// Adaptation state n: tau_n dn/dt = inc_n * output - n (explicit Euler, as Nengo).
template <typename T>
NC_HD void adapt(T& n, T output, T dt, T tau_n, T inc_n) {
    n += (dt / tau_n) * (inc_n * output - n);
}

// AdaptiveLIFRate: out = lif_rate(J - n); then n adapts towards inc_n * out.
template <typename T>
NC_HD T adaptive_lif_rate(T J, T& adaptation, T dt, T tau_n, T inc_n, T tau_rc, T tau_ref,
                          T amplitude) {
    const T out = lif_rate(J - adaptation, tau_rc, tau_ref, amplitude);
    adapt(adaptation, out, dt, tau_n, inc_n);
    return out;
}

// AdaptiveLIF: out = lif_spiking(J - n); then n adapts towards inc_n * out.
template <typename T>
NC_HD T adaptive_lif(T J, T& voltage, T& refractory_time, T& adaptation, T dt, T tau_n,
                     T inc_n, T tau_rc, T tau_ref, T min_voltage, T spike_height,
                     T full_decay) {
    const T out = lif_spiking(J - adaptation, voltage, refractory_time, dt, tau_rc, tau_ref,
                              min_voltage, spike_height, full_decay);
    adapt(adaptation, out, dt, tau_n, inc_n);
    return out;
}

// Izhikevich (Nengo's order: spike check and voltage reset come BEFORE the
// recovery update, which then sees the reset voltage):
//   J = max(-30, J)
//   v += dt * 1000 * (0.04 v^2 + 5 v + 140 - u + J)
//   spiked = v >= 30;  out = spiked / dt (spike_height);  if spiked: v = reset_voltage
//   u += dt * 1000 * (tau_recovery * (coupling * v - u))
//   if spiked: u += reset_recovery
template <typename T>
NC_HD T izhikevich(T J, T& voltage, T& recovery, T dt, T tau_recovery, T coupling,
                   T reset_voltage, T reset_recovery, T spike_height) {
    J = J < T(-30) ? T(-30) : J;
    const T dV = (T(0.04) * (voltage * voltage) + T(5) * voltage + T(140) - recovery + J) *
                 T(1000);
    voltage += dV * dt;
    const bool spiked = voltage >= T(30);
    if (spiked) voltage = reset_voltage;
    const T dU = (tau_recovery * (coupling * voltage - recovery)) * T(1000);
    recovery += dU * dt;
    if (spiked) recovery = recovery + reset_recovery;
    return spiked ? spike_height : T(0);
}

}  // namespace neurons
}  // namespace nc
