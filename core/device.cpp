#include "core/device.h"

#include <cstdlib>

namespace colt5 {

Device::Device(const std::string& spec) {
  if (spec == "cpu") {
    type = DeviceType::CPU;
    index = 0;
    return;
  }
  if (spec.rfind("cuda", 0) == 0) {
    type = DeviceType::CUDA;
    index = 0;
    if (spec.size() == 4) return;
    if (spec[4] == ':' && spec.size() > 5 && spec.find_first_not_of("0123456789", 5) == std::string::npos) {
      index = std::atoi(spec.c_str() + 5);
      return;
    }
  }
  fail(str("Device: argument 'spec' expected \"cpu\", \"cuda\" or \"cuda:N\", got \"", spec, "\""));
}

}  // namespace colt5
