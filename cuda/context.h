// Per-device CUDA state: one stream (every kernel and copy of that device runs on it, so work
// is ordered without extra synchronisation), one cuBLAS handle bound to that stream, and the
// device's caching allocator. Contexts are created on first use, one per device, behind a
// mutex; there is no other global mutable state.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace colt5 {
class Graph;
}

namespace colt5::cuda {

// Caching allocator. Freed blocks go to a free list of their size class and are reused by later
// requests of the same class (sizes are rounded up: to 512 B below 1 MiB, to 2 MiB above), so
// steady-state training does no cudaMalloc/cudaFree. On an out-of-memory error the cache is
// released and the allocation retried once; if it still fails, the error says how much was
// asked and how much the device has free.
//
// Graph pools (core/graph.h): between begin_pool(id) and end_pool(), while a CUDA graph is
// captured, every block allocated, and every block freed, belongs to pool `id`: its replays
// write those addresses, so they are handed out again only inside that pool, never to other
// work, until release_pool(id) (the graph is gone) returns the pool's free blocks to the cache.
// Blocks of a pool that are still held by tensors then become ordinary blocks.
class CachingAllocator {
public:
  explicit CachingAllocator(int device) : device_(device) {}
  ~CachingAllocator();
  void* allocate(size_t nbytes);
  void deallocate(void* ptr, size_t nbytes);
  void empty_cache();  // cudaFree every cached (unused) block outside graph pools
  void begin_pool(uint64_t id);
  void end_pool();
  void release_pool(uint64_t id);

  size_t bytes_in_use() const;   // live allocations (rounded sizes)
  size_t peak_bytes() const;     // max of bytes_in_use since start or reset_peak()
  size_t bytes_cached() const;   // held in free lists
  void reset_peak();

  static size_t round_size(size_t nbytes);

private:
  void release_cached_locked();
  void* malloc_locked(size_t size, size_t nbytes);
  int device_;
  mutable std::mutex mu_;
  std::map<size_t, std::vector<void*>> free_;  // size class -> free blocks
  std::map<uint64_t, std::map<size_t, std::vector<void*>>> pool_free_;  // graph pool -> its free blocks
  std::unordered_map<void*, uint64_t> owner_;  // block -> graph pool, for the blocks of graph pools
  uint64_t capturing_ = 0;                     // the pool of the capture in progress (0: none)
  size_t in_use_ = 0, peak_ = 0, cached_ = 0;
};

// Pinned host memory for copies from host memory to the device. A copy from pageable memory
// makes the host wait for the stream (the driver stages it itself); copied first into this
// ring, the transfer is asynchronous and the caller's buffer is free at once. The ring is
// kSlabs slabs of kSlab bytes; a slab is reused only after the copies from it have run (an
// event per slab, normally long complete: the host waits only when it is a whole ring ahead of
// the GPU). Larger copies go the pageable way.
class HostStaging {
public:
  static constexpr size_t kSlab = size_t(1) << 20;
  static constexpr int kSlabs = 8;
  ~HostStaging() = default;  // released by release() at exit, while the driver still runs
  // n bytes of pinned memory no queued copy still reads, or nullptr when n > kSlab. A wait for
  // an old copy (rare) is added to host_waits.
  void* take(size_t n, cudaStream_t stream, uint64_t& host_waits);
  void release();

private:
  char* buf_ = nullptr;
  cudaEvent_t done_[kSlabs] = {};
  bool pending_[kSlabs] = {};
  int slab_ = 0;
  size_t used_ = 0;
};

// Device-side argument checks (a bad index, a bad target) whose verdict the host reads at its
// next wait on the stream instead of right after the launch: a wait per gather would stall the
// pipeline many times per layer. A CUDA graph has its own DeferredChecks (the slots its
// launches were captured with): cleared at the start of every replay, copied back at its end,
// and read with raise_from_mirror() at the first wait after the replay. A launch reserves a slot, a cleared {set, value} pair of
// unsigned 64-bit words in device memory, which a kernel sets on a bad value (report() in
// kernels/common.cuh); with it the launcher leaves `raise`, which throws the op's colt5::Error
// for the reported value. At the next wait the used slots are copied back on the stream before
// the synchronisation (so the wait stays one wait), and the first set slot, in launch order,
// is raised. A kernel that reports skips the bad access, so the queued work stays memory-safe
// until then. Errors pending when the process exits without waiting again are not reported.
class DeferredChecks {
public:
  static constexpr size_t kSlots = 4096;  // launches between two waits; more forces a wait
  ~DeferredChecks();
  bool full() const { return raise_.size() == kSlots; }
  bool empty() const { return raise_.empty(); }
  // The slots and their mirror, allocated once (reserve() does it on first use).
  void ensure_slots(int device);
  // On the stream: zero every slot (a graph's first node).
  void clear_async(cudaStream_t stream);
  // Raise the first set slot of the mirror, keeping the verdicts (a graph's, after a replay).
  void raise_from_mirror() const;
  // A cleared slot for the next launch (not full(): the caller waits first): its device address,
  // and through set_raise what turns its verdict into an error. Nothing may wait between the two.
  unsigned long long* reserve(int device);
  void set_raise(unsigned long long* slot, std::function<void(int64_t value)> raise);
  // Around a stream synchronisation: queue the copy of the used slots, then (after it) clear
  // them on the stream and raise the first set one.
  void enqueue_readback(cudaStream_t stream);
  void raise_reported(cudaStream_t stream);
  // At exit: hand over the pending verdicts (the caller drops them: their captured tensors give
  // memory back through context(), which must not happen under the registry's lock), then free
  // the slots.
  std::vector<std::function<void(int64_t)>> take_pending();
  void release();

private:
  unsigned long long* dev_ = nullptr;   // [kSlots][2] on the device; unused slots are zero
  unsigned long long* host_ = nullptr;  // pinned mirror of the used slots
  std::vector<std::function<void(int64_t)>> raise_;  // one per used slot, in launch order
};

struct DeviceContext {
  int device = 0;
  cudaStream_t stream = nullptr;
  cublasHandle_t cublas = nullptr;
  CachingAllocator allocator;
  HostStaging staging;
  DeferredChecks checks;                          // the checks of launches made outside graphs
  DeferredChecks* capture_checks = nullptr;        // while a graph is captured: the graph's
  std::vector<const DeferredChecks*> replayed;     // graphs replayed since the last wait
  bool capturing() const { return capture_checks != nullptr; }
  DeferredChecks& launch_checks() { return capture_checks ? *capture_checks : checks; }
  // Host waits on this device's stream and device-to-host copies (sync_stats in core/backend.h).
  uint64_t host_waits = 0, device_to_host_copies = 0;
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

// The host waits for the device's stream: the one place colt5 does (counted in host_waits); the
// deferred checks queued since the last wait (and those of graphs replayed since) are read back
// and raised here. Throws while a graph is captured: a capture cannot contain a wait.
void wait(DeviceContext& ctx);

// core/graph.h on one device (cuda/graph.cpp).
std::unique_ptr<Graph> capture_graph(int device, const std::function<void()>& body);

}  // namespace colt5::cuda
