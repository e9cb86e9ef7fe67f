// CUDA device discovery for the `cuda` backend.  Every runtime call's status is
// checked; without a driver or device, the caller gets the reason as text.
#include <cuda_runtime.h>

#include <string>

#include "../kernels/neurons.h"

namespace nc {
namespace cuda {

// Returns the number of visible devices; on failure 0 and `why` names the cause.
int device_count(std::string& why) {
    int n = 0;
    cudaError_t err = cudaGetDeviceCount(&n);
    if (err != cudaSuccess) {
        why = std::string(cudaGetErrorName(err)) + ": " + cudaGetErrorString(err);
        cudaGetLastError();  // clear the sticky error state
        return 0;
    }
    if (n == 0) why = "no CUDA device is visible";
    return n;
}

// Compiled for the device so the shared kernel math cannot rot; the CUDA
// backend's kernels (issue 3) call the same functions.
__global__ void lif_step_kernel(const float* J, float* out, float* v, float* ref, int n,
                                float dt, float tau_rc, float tau_ref, float min_v,
                                float amp) {
    const int k = blockIdx.x * blockDim.x + threadIdx.x;
    if (k < n)
        out[k] = neurons::lif_spiking<float>(J[k], v[k], ref[k], dt, tau_rc, tau_ref, min_v, amp,
                                             neurons::lif_full_step_decay(dt, tau_rc));
}

// Likewise every other neuron function, in both precisions (instantiated below).
template <typename T>
__global__ void neuron_math_kernel(const T* J, T* out, T* a, T* b, T* c, int n, T dt) {
    const int k = blockIdx.x * blockDim.x + threadIdx.x;
    if (k >= n) return;
    const T j = J[k], p = T(0.02), q = T(0.002);
    out[k] = neurons::rectified_linear(j, p) + neurons::sigmoid(j, q) +
             neurons::tanh_rate(j, q) + neurons::lif_rate(j, p, q, T(1)) +
             neurons::spiking_rectified_linear(j, a[k], dt, T(1)) +
             neurons::regular_spikes(j, b[k], dt, T(1)) +
             neurons::adaptive_lif_rate(j, c[k], dt, T(1), p, p, q, T(1)) +
             neurons::adaptive_lif(j, a[k], b[k], c[k], dt, T(1), p, p, q, T(0), T(1), T(-0.05)) +
             neurons::izhikevich(j, a[k], b[k], dt, p, T(0.2), T(-65), T(8));
}
template __global__ void neuron_math_kernel<float>(const float*, float*, float*, float*,
                                                   float*, int, float);
template __global__ void neuron_math_kernel<double>(const double*, double*, double*, double*,
                                                    double*, int, double);

}  // namespace cuda
}  // namespace nc
