// A fake CUDA device for tests on machines without a GPU: host memory registered as the CUDA
// backend, so that a "cuda:0" tensor can exist. It allocates and copies bytes; no kernel is ever
// registered for it, which is fine for the tests that use it (device checks fire before any
// kernel runs; printing copies bytes to the host).
#pragma once

#include <cstdlib>
#include <cstring>

#include "core/backend.h"

namespace colt5::testing {

class HostMemoryAsCuda final : public Backend {
public:
  void* allocate(size_t nbytes, int) override { return nbytes ? std::malloc(nbytes) : nullptr; }
  void deallocate(void* p, size_t, int) override { std::free(p); }
  void copy(void* dst, Device, const void* src, Device, size_t nbytes) override { std::memcpy(dst, src, nbytes); }
  int device_count() override { return 1; }
  void synchronize(int) override {}
};

// Registers HostMemoryAsCuda for its lifetime when no CUDA backend exists, and unregisters it
// on every exit path (a failing REQUIRE throws through here). Tensors made on the fake device
// must be destroyed before it: declare them after the scope.
class FakeCudaScope {
public:
  FakeCudaScope() : installed_(!has_backend(DeviceType::CUDA)) {
    if (installed_) register_backend(DeviceType::CUDA, &backend_);
  }
  ~FakeCudaScope() {
    if (installed_) register_backend(DeviceType::CUDA, nullptr);
  }
  FakeCudaScope(const FakeCudaScope&) = delete;
  FakeCudaScope& operator=(const FakeCudaScope&) = delete;
  bool installed() const { return installed_; }

private:
  HostMemoryAsCuda backend_;
  bool installed_;
};

}  // namespace colt5::testing
