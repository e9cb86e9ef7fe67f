#include "program.h"

namespace nc {

const std::vector<int64_t>& InstrSpec::int_array(const std::string& name) const {
    auto it = ints.find(name);
    if (it == ints.end())
        throw std::invalid_argument(kind + ": missing integer array '" + name + "'");
    return it->second;
}

const std::vector<double>& InstrSpec::float_array(const std::string& name) const {
    auto it = floats.find(name);
    if (it == floats.end())
        throw std::invalid_argument(kind + ": missing float array '" + name + "'");
    return it->second;
}

double InstrSpec::scalar(const std::string& name) const {
    auto it = scalars.find(name);
    if (it == scalars.end())
        throw std::invalid_argument(kind + ": missing scalar '" + name + "'");
    return it->second;
}

double InstrSpec::scalar(const std::string& name, double fallback) const {
    auto it = scalars.find(name);
    return it == scalars.end() ? fallback : it->second;
}

void check_same_length(const InstrSpec& spec, const std::vector<std::string>& names) {
    size_t n = 0;
    bool first = true;
    for (const auto& name : names) {
        size_t len = spec.ints.count(name) ? spec.int_array(name).size()
                                           : spec.float_array(name).size();
        if (first) {
            n = len;
            first = false;
        } else if (len != n) {
            throw std::invalid_argument(spec.kind + ": array '" + name + "' has length " +
                                        std::to_string(len) + ", expected " +
                                        std::to_string(n));
        }
    }
}

template <typename T>
std::map<std::string, InstrFactory<T>>& instr_registry() {
    static std::map<std::string, InstrFactory<T>> registry;
    return registry;
}

template std::map<std::string, InstrFactory<float>>& instr_registry<float>();
template std::map<std::string, InstrFactory<double>>& instr_registry<double>();

}  // namespace nc
