// Compiles the learning-rule math of csrc/kernels/learning.h for the device,
// for float and double, so that the shared header cannot rot before the CUDA
// backend's learning kernels call it.
#include <cstdint>

#include "../kernels/learning.h"

namespace nc {
namespace cuda {
namespace {

// One element of each rule's delta for row r = blockIdx.x, column c = threadIdx.x
// of a contiguous (rows x cols) layout.  out holds four deltas per element.
template <typename T>
__global__ void learning_math_kernel(const T* pre, const T* post, const T* theta,
                                     const T* weights, const T* scale, T learning_signal,
                                     int64_t rows, int64_t cols, double learning_rate,
                                     double dt, double beta, T* out) {
    const int64_t r = blockIdx.x, c = threadIdx.x;
    if (r >= rows || c >= cols) return;
    const int64_t k = r * cols + c;
    const T alpha = static_cast<T>(learning_rate * dt);
    const T pes = learning::pes_row<T>(
        static_cast<T>(learning::pes_alpha(learning_rate, dt, cols)), post[r]);
    const T bcm = learning::bcm_row<T>(alpha, post[r], theta[r]);
    const learning::OjaRow<T> oja = learning::oja_row<T>(alpha, post[r]);
    const T gain = learning::voja_gain<T>(alpha, learning_signal);
    out[4 * k + 0] = learning::outer_delta<T>(pes, pre[c]);
    out[4 * k + 1] = learning::outer_delta<T>(bcm, pre[c]);
    out[4 * k + 2] =
        learning::oja_delta<T>(static_cast<T>(-beta), weights[k], oja, pre[c]);
    out[4 * k + 3] = learning::voja_delta<T>(gain, scale[r], post[r], pre[c], weights[k]);
}

template __global__ void learning_math_kernel<float>(const float*, const float*, const float*,
                                                     const float*, const float*, float,
                                                     int64_t, int64_t, double, double,
                                                     double, float*);
template __global__ void learning_math_kernel<double>(const double*, const double*,
                                                      const double*, const double*,
                                                      const double*, double, int64_t,
                                                      int64_t, double, double, double,
                                                      double*);

}  // namespace
}  // namespace cuda
}  // namespace nc
