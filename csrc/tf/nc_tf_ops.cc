// TensorFlow custom ops for training nengo_cuda models (CPU kernels, and GPU
// kernels when built with NC_TF_GPU=1).
//
// Built against the installed TensorFlow by nengo_cuda/training/ops.py (at
// install time or on first use, into a cache directory), NOT by the main CMake
// build.  The math is the shared kernel math of csrc/kernels/:
//
//   NcNeuronRate(J, params; kind)          rates = rate(J) per neuron
//   NcNeuronRateGrad(dy, J, params; kind)  dJ = dy * rate'(J)
//   NcLowpassScan(u, x0, a, b; reverse)    x_t = a x_{t-1} + b u_t over time
//                                          (nengo's LinearFilter OneX step)
//
// J has any shape whose last dimension is the neuron count n; params is [4, n]
// (unused rows ignored).  u is [batch, steps, n], x0 [batch, n], a and b [n].
//
// GPU: with NC_TF_GPU=1 (ops.py defines it when TensorFlow is a CUDA build and
// nvcc is found) the same ops get DEVICE_GPU kernels for float and double.  Their
// CUDA code is nc_tf_ops_gpu.cu.cc (compiled by nvcc, without TensorFlow's
// headers); here they validate like the CPU kernels, then launch on
// TensorFlow's compute stream and report any CUDA error through OP_REQUIRES.
#include <cstdint>
#include <string>
#include <type_traits>

#include "kernels/linear_filter.h"
#include "kernels/neuron_rates.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#if NC_TF_GPU
#include "xla/stream_executor/stream.h"
#endif

using namespace tensorflow;  // NOLINT

#if NC_TF_GPU
// The launchers of nc_tf_ops_gpu.cu.cc: `stream` is a cudaStream_t, the result a
// cudaError_t (0: launched).
namespace nc_tf_gpu {
int neuron_rate(void* stream, int kind, int64_t total, int64_t n, const float* j,
                const float* p, const float* dy, float* out);
int neuron_rate(void* stream, int kind, int64_t total, int64_t n, const double* j,
                const double* p, const double* dy, double* out);
int lowpass_scan(void* stream, int64_t batch, int64_t steps, int64_t n, bool reverse,
                 const float* u, const float* x0, const float* a, const float* b, float* y);
int lowpass_scan(void* stream, int64_t batch, int64_t steps, int64_t n, bool reverse,
                 const double* u, const double* x0, const double* a, const double* b,
                 double* y);
const char* error_string(int code);
}  // namespace nc_tf_gpu
#endif

namespace {

int kind_index(const std::string& kind) {
    if (kind == "lif_rate") return nc::rates::kLifRate;
    if (kind == "soft_lif_rate") return nc::rates::kSoftLifRate;
    if (kind == "rectified_linear") return nc::rates::kRectifiedLinear;
    if (kind == "sigmoid") return nc::rates::kSigmoid;
    if (kind == "tanh") return nc::rates::kTanh;
    if (kind == "leaky_relu") return nc::rates::kLeakyRelu;
    return -1;
}

Status same_shape_as_input(shape_inference::InferenceContext* c, int input) {
    c->set_output(0, c->input(input));
    return OkStatus();
}

struct CpuTag {};
struct GpuTag {};

#if NC_TF_GPU
// TensorFlow's compute stream for this op (a cudaStream_t), or an error.
bool gpu_stream(OpKernelContext* ctx, void** stream) {
    auto* dc = ctx->op_device_context();
    auto* s = dc ? dc->stream() : nullptr;
    *stream = s ? s->platform_specific_handle().stream : nullptr;
    if (*stream == nullptr) {
        ctx->CtxFailure(__FILE__, __LINE__,
                        errors::Internal("nengo_cuda op: no CUDA stream for the GPU kernel"));
        return false;
    }
    return true;
}

// OP_REQUIRES for a launcher's cudaError_t.
#define NC_GPU_CHECK(ctx, call, what)                                                   \
    do {                                                                                 \
        const int nc_err_ = (call);                                                      \
        OP_REQUIRES(ctx, nc_err_ == 0,                                                   \
                    errors::Internal("nengo_cuda op ", what, ": CUDA error ", nc_err_, \
                                     " (", nc_tf_gpu::error_string(nc_err_), ")"));     \
    } while (0)
#endif

}  // namespace

REGISTER_OP("NcNeuronRate")
    .Input("j: T")
    .Input("params: T")
    .Output("rates: T")
    .Attr("kind: {'lif_rate', 'soft_lif_rate', 'rectified_linear', 'sigmoid', 'tanh', 'leaky_relu'}")
    .Attr("T: {float, double}")
    .SetShapeFn([](shape_inference::InferenceContext* c) { return same_shape_as_input(c, 0); });

REGISTER_OP("NcNeuronRateGrad")
    .Input("dy: T")
    .Input("j: T")
    .Input("params: T")
    .Output("dj: T")
    .Attr("kind: {'lif_rate', 'soft_lif_rate', 'rectified_linear', 'sigmoid', 'tanh', 'leaky_relu'}")
    .Attr("T: {float, double}")
    .SetShapeFn([](shape_inference::InferenceContext* c) { return same_shape_as_input(c, 1); });

REGISTER_OP("NcLowpassScan")
    .Input("u: T")
    .Input("x0: T")
    .Input("a: T")
    .Input("b: T")
    .Output("y: T")
    .Attr("reverse: bool = false")
    .Attr("T: {float, double}")
    .SetShapeFn([](shape_inference::InferenceContext* c) { return same_shape_as_input(c, 0); });

template <typename Device, typename T, bool kGrad>
class NeuronRateOp : public OpKernel {
   public:
    explicit NeuronRateOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
        std::string kind;
        OP_REQUIRES_OK(ctx, ctx->GetAttr("kind", &kind));
        kind_ = kind_index(kind);
    }

    void Compute(OpKernelContext* ctx) override {
        const int off = kGrad ? 1 : 0;
        const Tensor& J = ctx->input(off);
        const Tensor& params = ctx->input(off + 1);
        OP_REQUIRES(ctx, J.dims() >= 1, errors::InvalidArgument("J must have rank >= 1"));
        const int64_t n = J.dim_size(J.dims() - 1);
        OP_REQUIRES(ctx, params.dims() == 2 && params.dim_size(0) == 4 && params.dim_size(1) == n,
                    errors::InvalidArgument("params must have shape [4, n] with n = J's last dim"));
        if (kGrad) {
            OP_REQUIRES(ctx, ctx->input(0).shape() == J.shape(),
                        errors::InvalidArgument("dy and J must have the same shape"));
        }
        Tensor* out = nullptr;
        OP_REQUIRES_OK(ctx, ctx->allocate_output(0, J.shape(), &out));
        const T* j = J.flat<T>().data();
        const T* p = params.flat<T>().data();
        const T* dy = kGrad ? ctx->input(0).flat<T>().data() : nullptr;
        T* o = out->flat<T>().data();
        const int64_t total = J.NumElements();
        const int kind = kind_;
#if NC_TF_GPU
        if (std::is_same<Device, GpuTag>::value) {
            void* stream = nullptr;
            if (!gpu_stream(ctx, &stream)) return;
            NC_GPU_CHECK(ctx, nc_tf_gpu::neuron_rate(stream, kind, total, n, j, p, dy, o),
                         kGrad ? "NcNeuronRateGrad" : "NcNeuronRate");
            return;
        }
#endif
        auto work = [=](int64_t begin, int64_t end) {
            for (int64_t i = begin; i < end; ++i) {
                const int64_t k = n ? i % n : 0;
                const T pk[4] = {p[k], p[n + k], p[2 * n + k], p[3 * n + k]};
                o[i] = kGrad ? dy[i] * nc::rates::rate_grad(kind, j[i], pk)
                             : nc::rates::rate(kind, j[i], pk);
            }
        };
        auto* pool = ctx->device()->tensorflow_cpu_worker_threads()->workers;
        pool->ParallelFor(total, 40, work);
    }

   private:
    int kind_;
};

template <typename Device, typename T>
class LowpassScanOp : public OpKernel {
   public:
    explicit LowpassScanOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
        OP_REQUIRES_OK(ctx, ctx->GetAttr("reverse", &reverse_));
    }

    void Compute(OpKernelContext* ctx) override {
        const Tensor& u = ctx->input(0);
        const Tensor& x0 = ctx->input(1);
        const Tensor& a = ctx->input(2);
        const Tensor& b = ctx->input(3);
        OP_REQUIRES(ctx, u.dims() == 3, errors::InvalidArgument("u must be [batch, steps, n]"));
        const int64_t B = u.dim_size(0), S = u.dim_size(1), n = u.dim_size(2);
        OP_REQUIRES(ctx, x0.dims() == 2 && x0.dim_size(0) == B && x0.dim_size(1) == n,
                    errors::InvalidArgument("x0 must be [batch, n]"));
        OP_REQUIRES(ctx, a.NumElements() == n && b.NumElements() == n,
                    errors::InvalidArgument("a and b must have n elements"));
        Tensor* out = nullptr;
        OP_REQUIRES_OK(ctx, ctx->allocate_output(0, u.shape(), &out));
        const T* up = u.flat<T>().data();
        const T* xp = x0.flat<T>().data();
        const T* ap = a.flat<T>().data();
        const T* bp = b.flat<T>().data();
        T* y = out->flat<T>().data();
        const bool rev = reverse_;
#if NC_TF_GPU
        if (std::is_same<Device, GpuTag>::value) {
            void* stream = nullptr;
            if (!gpu_stream(ctx, &stream)) return;
            NC_GPU_CHECK(ctx, nc_tf_gpu::lowpass_scan(stream, B, S, n, rev, up, xp, ap, bp, y),
                         "NcLowpassScan");
            return;
        }
#endif
        auto work = [=](int64_t begin, int64_t end) {
            for (int64_t col = begin; col < end; ++col) {
                const int64_t bi = col / n, k = col % n;
                T x = xp[bi * n + k];
                for (int64_t s = 0; s < S; ++s) {
                    const int64_t t = rev ? S - 1 - s : s;
                    const int64_t idx = (bi * S + t) * n + k;
                    y[idx] = nc::filters::one_state(x, ap[k], bp[k], up[idx]);
                }
            }
        };
        auto* pool = ctx->device()->tensorflow_cpu_worker_threads()->workers;
        pool->ParallelFor(B * n, 10 * S + 1, work);
    }

   private:
    bool reverse_;
};

#define NC_REGISTER(DEV, TAG, T)                                                         \
    REGISTER_KERNEL_BUILDER(Name("NcNeuronRate").Device(DEV).TypeConstraint<T>("T"),       \
                            NeuronRateOp<TAG, T, false>);                                  \
    REGISTER_KERNEL_BUILDER(Name("NcNeuronRateGrad").Device(DEV).TypeConstraint<T>("T"),   \
                            NeuronRateOp<TAG, T, true>);                                   \
    REGISTER_KERNEL_BUILDER(Name("NcLowpassScan").Device(DEV).TypeConstraint<T>("T"),      \
                            LowpassScanOp<TAG, T>);

NC_REGISTER(DEVICE_CPU, CpuTag, float)
NC_REGISTER(DEVICE_CPU, CpuTag, double)
#if NC_TF_GPU
NC_REGISTER(DEVICE_GPU, GpuTag, float)
NC_REGISTER(DEVICE_GPU, GpuTag, double)
#endif
