// Neuron update math, one function per neuron type, shared by host and device.
//
// Each function updates ONE neuron for one time step, exactly as the matching
// `step` in nengo/neurons.py (same operation order, so float64 matches Nengo to
// rounding).  State is passed by reference; the return value is the output.
#pragma once
#include <cmath>

#include "../common/host_device.h"

namespace nc {
namespace neurons {

// LIFRate: rate = amplitude / (tau_ref + tau_rc * log1p(1 / (J - 1))) for J > 1.
template <typename T>
NC_HD T lif_rate(T J, T tau_rc, T tau_ref, T amplitude) {
    const T j = J - T(1);
    return j > T(0) ? amplitude / (tau_ref + tau_rc * log1p(T(1) / j)) : T(0);
}

// LIF: leaky integration over the non-refractory part of the step, spike when
// v > 1, with the refractory period starting at the interpolated spike time.
template <typename T>
NC_HD T lif_spiking(T J, T& voltage, T& refractory_time, T dt, T tau_rc, T tau_ref,
                    T min_voltage, T amplitude) {
    refractory_time -= dt;
    T delta_t = dt - refractory_time;
    delta_t = delta_t < T(0) ? T(0) : (delta_t > dt ? dt : delta_t);
    voltage -= (J - voltage) * expm1(-delta_t / tau_rc);
    const bool spiked = voltage > T(1);
    T out = spiked ? amplitude / dt : T(0);
    if (spiked) {
        const T t_spike = dt + tau_rc * log1p(-(voltage - T(1)) / (J - T(1)));
        voltage = T(0);
        refractory_time = tau_ref + t_spike;
    } else if (voltage < min_voltage) {
        voltage = min_voltage;
    }
    return out;
}

// Adaptation state n: tau_n dn/dt = inc_n * output - n (explicit Euler, as Nengo).
template <typename T>
NC_HD void adapt(T& n, T output, T dt, T tau_n, T inc_n) {
    n += (dt / tau_n) * (inc_n * output - n);
}

}  // namespace neurons
}  // namespace nc
