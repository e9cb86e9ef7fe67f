// CUDA device discovery for the `cuda` backend.  Every runtime call's status is
// checked; without a driver or device, the caller gets the reason as text.
#include <cuda_runtime.h>

#include <string>

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

}  // namespace cuda
}  // namespace nc
