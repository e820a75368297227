// A device backend: how to allocate, free and copy memory on one kind of device.
//
// The CPU backend is built in. The CUDA backend (cuda/) registers itself when the library is
// built with CUDA; until then a CUDA tensor is a clear error, not a crash.
#pragma once

#include <cstddef>

#include "core/device.h"

namespace colt5 {

class Backend {
public:
  virtual ~Backend() = default;
  virtual void* allocate(size_t nbytes, int index) = 0;
  virtual void deallocate(void* ptr, size_t nbytes, int index) = 0;
  // Copy nbytes between two buffers; at least one of the two devices is this backend's.
  virtual void copy(void* dst, Device dst_device, const void* src, Device src_device, size_t nbytes) = 0;
  virtual int device_count() = 0;
  virtual void synchronize(int index) = 0;
};

void register_backend(DeviceType type, Backend* backend);
// The backend of a device; throws if the build or the machine has none for it.
Backend& backend_for(Device device);
bool has_backend(DeviceType type);

// Copy bytes between any two devices (host<->device, device<->device, host<->host).
void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t nbytes);

}  // namespace colt5
