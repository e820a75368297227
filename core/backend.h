// A device backend: how to allocate, free and copy memory on one kind of device.
//
// The CPU backend is built in. The CUDA backend (cuda/) registers itself when the library is
// built with CUDA; until then a CUDA tensor is a clear error, not a crash.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>

#include "core/device.h"

namespace colt5 {

class Graph;  // core/graph.h

// How often the host waited for a device since the last reset: host_waits counts every
// synchronisation of the device's stream (explicit ones, and the one each copy to or from host
// memory makes), device_to_host_copies the copies to host memory among them. The CPU has none.
struct SyncStats {
  uint64_t host_waits = 0;
  uint64_t device_to_host_copies = 0;
};

class Backend {
public:
  virtual ~Backend() = default;
  virtual void* allocate(size_t nbytes, int index) = 0;
  virtual void deallocate(void* ptr, size_t nbytes, int index) = 0;
  // Copy nbytes between two buffers; at least one of the two devices is this backend's.
  virtual void copy(void* dst, Device dst_device, const void* src, Device src_device, size_t nbytes) = 0;
  virtual int device_count() = 0;
  virtual void synchronize(int index) = 0;
  // Allocator statistics (bytes held by live tensors, and the peak since the last reset) and
  // cache control; the CPU backend counts its allocations too but has no cache.
  virtual size_t memory_allocated(int /*index*/) { return 0; }
  virtual size_t max_memory_allocated(int /*index*/) { return 0; }
  virtual void reset_peak_memory(int /*index*/) {}
  virtual void empty_cache(int /*index*/) {}
  virtual SyncStats sync_stats(int /*index*/) { return {}; }
  virtual void reset_sync_stats(int /*index*/) {}
  // core/graph.h; the default (the CPU) has no graphs and throws.
  virtual std::unique_ptr<Graph> capture_graph(int index, const std::function<void()>& body);
};

void register_backend(DeviceType type, Backend* backend);
// The backend of a device; throws if the build or the machine has none for it.
Backend& backend_for(Device device);
bool has_backend(DeviceType type);

// Whether this build has CUDA and the machine at least one GPU (never throws).
bool cuda_is_available();
int cuda_device_count();
void synchronize(Device device);
size_t memory_allocated(Device device);
size_t max_memory_allocated(Device device);
void reset_peak_memory(Device device);
void empty_cache(Device device);
SyncStats sync_stats(Device device);
void reset_sync_stats(Device device);

// TF32 tensor-core math for float32 matrix products on the GPU: off by default (full float32
// accuracy); turn it on for speed when ~1e-3 relative error in products is acceptable.
void set_allow_tf32(bool on);
bool allow_tf32();

// Copy bytes between any two devices (host<->device, device<->device, host<->host).
void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t nbytes);

}  // namespace colt5
