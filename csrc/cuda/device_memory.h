// Device memory of a program: every allocation through the hooks CuPy gives
// (backends/cuda.py), tracked so close() can free what is left.
#pragma once
#include <algorithm>
#include <stdexcept>
#include <string>
#include <unordered_set>
#include <utility>

#include "device_api.h"

namespace nc {
namespace NC_DEV_NS {

// Device memory, all of it from hooks.alloc, released through hooks.free.
class Memory {
  public:
    explicit Memory(DeviceHooks hooks) : hooks_(std::move(hooks)) {}
    uint64_t alloc(size_t bytes) {
        const uint64_t ptr = hooks_.alloc(bytes == 0 ? 8 : bytes);
        if (ptr == 0) throw std::runtime_error("device allocation of " + std::to_string(bytes) +
                                               " bytes returned a null pointer");
        live_.insert(ptr);
        return ptr;
    }
    void free(uint64_t ptr) {
        if (ptr == 0 || !live_.erase(ptr)) return;
        hooks_.free(ptr);
    }
    void free_all() {
        auto live = std::move(live_);
        live_.clear();
        for (uint64_t p : live) hooks_.free(p);
    }
    size_t live() const { return live_.size(); }

  private:
    DeviceHooks hooks_;
    std::unordered_set<uint64_t> live_;
};

// A reusable device buffer that grows when asked for more.
struct Growable {
    uint64_t ptr = 0;
    size_t bytes = 0;
    void ensure(Memory& mem, size_t need) {
        if (need <= bytes && ptr) return;
        mem.free(ptr);
        ptr = 0;
        bytes = std::max(need, bytes + bytes / 2);
        ptr = mem.alloc(bytes);
    }
};

}  // namespace NC_DEV_NS
}  // namespace nc
