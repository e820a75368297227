// Per-device CUDA state: one stream (every kernel and copy of that device runs on it, so work
// is ordered without extra synchronisation), one cuBLAS handle bound to that stream, and the
// device's caching allocator. Contexts are created on first use, one per device, behind a
// mutex; there is no other global mutable state.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <map>
#include <mutex>
#include <vector>

namespace colt5::cuda {

// Caching allocator. Freed blocks go to a free list of their size class and are reused by later
// requests of the same class (sizes are rounded up: to 512 B below 1 MiB, to 2 MiB above), so
// steady-state training does no cudaMalloc/cudaFree. On an out-of-memory error the cache is
// released and the allocation retried once; if it still fails, the error says how much was
// asked and how much the device has free.
class CachingAllocator {
public:
  explicit CachingAllocator(int device) : device_(device) {}
  ~CachingAllocator();
  void* allocate(size_t nbytes);
  void deallocate(void* ptr, size_t nbytes);
  void empty_cache();  // cudaFree every cached (unused) block

  size_t bytes_in_use() const;   // live allocations (rounded sizes)
  size_t peak_bytes() const;     // max of bytes_in_use since start or reset_peak()
  size_t bytes_cached() const;   // held in free lists
  void reset_peak();

  static size_t round_size(size_t nbytes);

private:
  void release_cached_locked();
  int device_;
  mutable std::mutex mu_;
  std::map<size_t, std::vector<void*>> free_;  // size class -> free blocks
  size_t in_use_ = 0, peak_ = 0, cached_ = 0;
};

struct DeviceContext {
  int device = 0;
  cudaStream_t stream = nullptr;
  cublasHandle_t cublas = nullptr;
  CachingAllocator allocator;
  explicit DeviceContext(int d);
  ~DeviceContext();
};

// Number of usable GPUs; 0 when the machine has no driver or no device (never throws).
int device_count();
bool is_available();
// The context of a device (created on first use). Throws if the index is out of range.
DeviceContext& context(int device);
inline cudaStream_t stream(int device) { return context(device).stream; }

// Allocator statistics and cache control for one device.
size_t memory_allocated(int device = 0);
size_t max_memory_allocated(int device = 0);
void reset_peak_memory(int device = 0);
void empty_cache(int device = 0);
void synchronize(int device = 0);

}  // namespace colt5::cuda
