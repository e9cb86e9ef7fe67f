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
    if (k < n) out[k] = neurons::lif_spiking<float>(J[k], v[k], ref[k], dt, tau_rc, tau_ref,
                                                     min_v, amp);
}

}  // namespace cuda
}  // namespace nc
