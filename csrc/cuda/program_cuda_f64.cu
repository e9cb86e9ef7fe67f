// The float64 device program for CUDA GPUs (see program_cuda.cuh).
#include "program_cuda.cuh"

namespace nc {

std::unique_ptr<DeviceProgram<double>> make_gpu_program_f64(const DeviceLayout<double>& lay,
                                                           DeviceHooks hooks) {
    return std::make_unique<gpu::Program<double>>(lay, std::move(hooks));
}

}  // namespace nc
