#include "core/ops/creation.h"
#include "core/philox.h"

#include <type_traits>

namespace colt5::cpu {

void arange(Tensor& out, double start, double step) {
  visit_numeric(out.dtype(), "arange", [&]<class T>() {
    T* o = static_cast<T*>(out.raw_data());
    for (int64_t i = 0; i < out.numel(); ++i) o[i] = static_cast<T>(start + double(i) * step);
  });
}

void random(Tensor& out, RandomKind kind, uint64_t seed, uint64_t offset, int64_t low, int64_t high) {
  visit_numeric(out.dtype(), "random", [&]<class T>() {
    T* o = static_cast<T*>(out.raw_data());
    const uint64_t range = uint64_t(high - low);
    for (int64_t i = 0; i < out.numel(); ++i) {
      const Philox4 r = philox4x32_10(offset + uint64_t(i), seed);
      if (kind == RandomKind::Uniform) {
        // Draw in the target precision so that a float never rounds up to 1.
        if constexpr (std::is_same_v<T, float>) o[i] = philox_uniform<float>(r.w[0], r.w[1]);
        else o[i] = static_cast<T>(philox_uniform<double>(r.w[0], r.w[1]));
      }
      else if (kind == RandomKind::Normal) o[i] = static_cast<T>(philox_normal<double>(r));
      else o[i] = static_cast<T>(low + int64_t(((uint64_t(r.w[0]) << 32) | r.w[1]) % range));
    }
  });
}

}  // namespace colt5::cpu
