// Compiled for the device so the shared SimProcess math (linear filters and
// table rows) cannot rot; the CUDA backend's process kernels will call the same
// functions.  One thread per filtered element.
#include "../kernels/linear_filter.h"
#include "../kernels/process_table.h"

namespace nc {
namespace cuda {

template <typename T>
__global__ void lti_elementwise_kernel(const T* u, T* y, T* x, const int64_t* form,
                                       const double* a, const double* b, const int64_t* inc,
                                       int64_t n) {
    const int64_t k = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
    if (k >= n) return;
    T yk;
    if (form[k] == filters::kNoX)
        yk = filters::no_state<T>(static_cast<T>(b[k]), u[k]);
    else if (form[k] == filters::kOneX)
        yk = filters::one_state<T>(x[k], static_cast<T>(a[k]), static_cast<T>(b[k]), u[k]);
    else
        yk = filters::one_state_scalar<T>(x[k], a[k], b[k], u[k]);
    filters::write_output(y[k], yk, inc[k] != 0);
}

// One block of m elements sharing an n-state system (n <= kMaxStates here).
template <typename T>
__global__ void lti_state_space_kernel(const T* u, T* y, T* x, int64_t n, int64_t m,
                                       const double* A, const double* B, const double* C,
                                       double D, bool general, bool inc) {
    constexpr int kMaxStates = 16;
    const int64_t k = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
    if (k >= m || n > kMaxStates) return;
    double tmp[kMaxStates];
    const double yk = filters::state_space<T>(n, A, B, C, D, general, x + k, m, u[k], tmp);
    filters::write_output(y[k], yk, inc);
}

__global__ void process_table_kernel(const double* table, double time, double dt,
                                     int64_t period, int64_t m, float* y) {
    const int64_t k = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
    if (k >= m) return;
    const int64_t row = processes::periodic_row(time, dt, period);
    filters::write_output(y[k], table[row * m + k], false);
}

template __global__ void lti_elementwise_kernel<float>(const float*, float*, float*,
                                                       const int64_t*, const double*,
                                                       const double*, const int64_t*, int64_t);
template __global__ void lti_elementwise_kernel<double>(const double*, double*, double*,
                                                        const int64_t*, const double*,
                                                        const double*, const int64_t*, int64_t);
template __global__ void lti_state_space_kernel<float>(const float*, float*, float*, int64_t,
                                                       int64_t, const double*, const double*,
                                                       const double*, double, bool, bool);
template __global__ void lti_state_space_kernel<double>(const double*, double*, double*,
                                                        int64_t, int64_t, const double*,
                                                        const double*, const double*, double,
                                                        bool, bool);

}  // namespace cuda
}  // namespace nc
