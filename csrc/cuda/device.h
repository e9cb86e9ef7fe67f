#pragma once
#include <string>
namespace nc {
namespace cuda {
int device_count(std::string& why);
}
}  // namespace nc
