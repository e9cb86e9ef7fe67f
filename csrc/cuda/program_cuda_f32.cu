// The float32 device program for CUDA GPUs (see program_cuda.cuh).
#include "program_cuda.cuh"

namespace nc {

std::unique_ptr<DeviceProgram<float>> make_gpu_program_f32(const DeviceLayout<float>& lay,
                                                           DeviceHooks hooks) {
    return std::make_unique<gpu::Program<float>>(lay, std::move(hooks));
}

}  // namespace nc
