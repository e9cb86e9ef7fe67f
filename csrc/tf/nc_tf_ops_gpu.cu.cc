// CUDA kernels of the TensorFlow custom ops (csrc/tf/nc_tf_ops.cc registers
// them for DEVICE_GPU when the library is built with NC_TF_GPU=1).
//
// Compiled by nvcc (`nvcc -x cu`) WITHOUT TensorFlow's headers: this file sees
// only the CUDA runtime and the shared kernel math of csrc/kernels/, and exports
// plain launchers that take the cudaStream_t as a void* and return the
// cudaError_t as an int.  The OpKernels (compiled by the host compiler against
// TensorFlow's headers) pass TensorFlow's compute stream and turn a non-zero
// result into an OP_REQUIRES error.  So the GPU part does not depend on nvcc
// parsing TensorFlow's (and Eigen's) headers, which follow TensorFlow's own
// CUDA version rather than the nvcc at hand.
//
//   nc_tf_gpu_neuron_rate   one thread per element (grid-stride): rate(J) or
//                           dy * rate'(J), params [4, n] indexed by i % n
//   nc_tf_gpu_lowpass_scan  one thread per (batch, neuron) column, serial over
//                           time (the same recurrence as the CPU kernel)
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/linear_filter.h"
#include "kernels/neuron_rates.h"

namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 65535;

inline int blocks_for(int64_t work) {
    const int64_t b = (work + kThreads - 1) / kThreads;
    return static_cast<int>(b < kMaxBlocks ? b : kMaxBlocks);
}

template <typename T, bool kGrad>
__global__ void neuron_rate_kernel(int kind, int64_t total, int64_t n, const T* __restrict__ j,
                                   const T* __restrict__ p, const T* __restrict__ dy,
                                   T* __restrict__ out) {
    const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
    for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
         i += stride) {
        const int64_t k = i % n;
        const T pk[4] = {p[k], p[n + k], p[2 * n + k], p[3 * n + k]};
        out[i] = kGrad ? dy[i] * nc::rates::rate_grad(kind, j[i], pk)
                       : nc::rates::rate(kind, j[i], pk);
    }
}

template <typename T>
__global__ void lowpass_scan_kernel(int64_t batch, int64_t steps, int64_t n, bool reverse,
                                    const T* __restrict__ u, const T* __restrict__ x0,
                                    const T* __restrict__ a, const T* __restrict__ b,
                                    T* __restrict__ y) {
    const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
    for (int64_t col = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
         col < batch * n; col += stride) {
        const int64_t bi = col / n, k = col % n;
        const T ak = a[k], bk = b[k];
        T x = x0[col];
        for (int64_t s = 0; s < steps; ++s) {
            const int64_t t = reverse ? steps - 1 - s : s;
            const int64_t idx = (bi * steps + t) * n + k;
            y[idx] = nc::filters::one_state(x, ak, bk, u[idx]);
        }
    }
}

template <typename T>
int launch_rate(void* stream, int kind, int64_t total, int64_t n, const T* j, const T* p,
                const T* dy, T* out) {
    if (total == 0 || n == 0) return cudaSuccess;
    cudaStream_t s = static_cast<cudaStream_t>(stream);
    if (dy != nullptr)
        neuron_rate_kernel<T, true><<<blocks_for(total), kThreads, 0, s>>>(kind, total, n, j, p,
                                                                           dy, out);
    else
        neuron_rate_kernel<T, false><<<blocks_for(total), kThreads, 0, s>>>(kind, total, n, j,
                                                                            p, dy, out);
    return static_cast<int>(cudaGetLastError());
}

template <typename T>
int launch_scan(void* stream, int64_t batch, int64_t steps, int64_t n, bool reverse, const T* u,
                const T* x0, const T* a, const T* b, T* y) {
    if (batch * n == 0 || steps == 0) return cudaSuccess;
    cudaStream_t s = static_cast<cudaStream_t>(stream);
    lowpass_scan_kernel<T><<<blocks_for(batch * n), kThreads, 0, s>>>(batch, steps, n, reverse, u,
                                                                       x0, a, b, y);
    return static_cast<int>(cudaGetLastError());
}

}  // namespace

// The launchers nc_tf_ops.cc declares (extern "C"-free C++ overloads on T).
namespace nc_tf_gpu {

int neuron_rate(void* stream, int kind, int64_t total, int64_t n, const float* j,
                const float* p, const float* dy, float* out) {
    return launch_rate(stream, kind, total, n, j, p, dy, out);
}
int neuron_rate(void* stream, int kind, int64_t total, int64_t n, const double* j,
                const double* p, const double* dy, double* out) {
    return launch_rate(stream, kind, total, n, j, p, dy, out);
}
int lowpass_scan(void* stream, int64_t batch, int64_t steps, int64_t n, bool reverse,
                 const float* u, const float* x0, const float* a, const float* b, float* y) {
    return launch_scan(stream, batch, steps, n, reverse, u, x0, a, b, y);
}
int lowpass_scan(void* stream, int64_t batch, int64_t steps, int64_t n, bool reverse,
                 const double* u, const double* x0, const double* a, const double* b,
                 double* y) {
    return launch_scan(stream, batch, steps, n, reverse, u, x0, a, b, y);
}
const char* error_string(int code) {
    return cudaGetErrorString(static_cast<cudaError_t>(code));
}

}  // namespace nc_tf_gpu
