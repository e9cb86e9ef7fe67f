// Checked CUDA runtime calls: every status is tested, and a failure becomes a
// std::runtime_error naming the call, the file, the line and CUDA's message
// (pybind11 turns it into a Python RuntimeError).
#pragma once
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

namespace nc {
namespace gpu {

[[noreturn]] inline void cuda_fail(cudaError_t err, const char* call, const char* file, int line) {
    cudaGetLastError();  // clear a non-sticky error so that later calls can proceed
    throw std::runtime_error(std::string("CUDA error in ") + call + " at " + file + ":" +
                             std::to_string(line) + ": " + cudaGetErrorName(err) + ": " +
                             cudaGetErrorString(err));
}

}  // namespace gpu
}  // namespace nc

#define NC_CUDA_CHECK(call)                                                  \
    do {                                                                     \
        const cudaError_t nc_err_ = (call);                                  \
        if (nc_err_ != cudaSuccess) ::nc::gpu::cuda_fail(nc_err_, #call, __FILE__, __LINE__); \
    } while (0)

// For destructors and clean-up paths, which must not throw: the status is
// still read (and a sticky error cleared) but not raised.
#define NC_CUDA_IGNORE(call)                                                 \
    do {                                                                     \
        if ((call) != cudaSuccess) cudaGetLastError();                       \
    } while (0)
