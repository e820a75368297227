// Helpers of the GPU suite. Every GPU test starts with COLT5_REQUIRE_GPU(): on a machine
// without a CUDA device (or a build without CUDA) the test says it was skipped, and passes.
#pragma once

#include <doctest/doctest.h>

#include <string>

#include "core/backend.h"

#define COLT5_REQUIRE_GPU()                                                                       \
  do {                                                                                            \
    if (!::colt5::cuda_is_available()) {                                                          \
      const char* colt5_why = ::colt5::has_backend(::colt5::DeviceType::CUDA)                    \
                                  ? "skipped: no CUDA device (no GPU or no driver on this machine)" \
                                  : "skipped: no CUDA device (this build has no CUDA backend)";   \
      MESSAGE(std::string(colt5_why));                                                            \
      return;                                                                                     \
    }                                                                                             \
  } while (0)

namespace colt5::gputest {
inline Device gpu() { return Device(DeviceType::CUDA, 0); }
}  // namespace colt5::gputest
