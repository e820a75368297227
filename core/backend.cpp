#include "core/backend.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <new>

#include "core/error.h"
#include "core/graph.h"
#include "core/storage.h"

namespace colt5 {

std::unique_ptr<Graph> Backend::capture_graph(int, const std::function<void()>&) {
  fail("capture_graph: argument 'device' expected a CUDA device, got the CPU (graphs record GPU launches)");
}

std::unique_ptr<Graph> capture_graph(Device device, const std::function<void()>& body) {
  return backend_for(device).capture_graph(device.index, body);
}

namespace {

// Host memory, 64-byte aligned so that vectorised loops and OpenBLAS are happy. It counts the
// bytes held by live tensors (rounded to 64) and their peak, as the CUDA allocator does, so that
// benchmarks can report the same statistic on both devices; there is no cache to empty.
class CpuBackend final : public Backend {
public:
  void* allocate(size_t nbytes, int) override {
    if (nbytes == 0) return nullptr;
    const size_t rounded = round(nbytes);
    void* p = std::aligned_alloc(64, rounded);
    COLT5_CHECK(p != nullptr, "cpu allocator: out of memory allocating ", nbytes, " bytes");
    const size_t now = in_use_.fetch_add(rounded) + rounded;
    size_t peak = peak_.load();
    while (now > peak && !peak_.compare_exchange_weak(peak, now)) {}
    return p;
  }
  void deallocate(void* ptr, size_t nbytes, int) override {
    if (!ptr) return;
    std::free(ptr);
    in_use_.fetch_sub(round(nbytes));
  }
  void copy(void* dst, Device, const void* src, Device, size_t nbytes) override {
    if (nbytes) std::memcpy(dst, src, nbytes);
  }
  int device_count() override { return 1; }
  void synchronize(int) override {}
  size_t memory_allocated(int) override { return in_use_.load(); }
  size_t max_memory_allocated(int) override { return peak_.load(); }
  void reset_peak_memory(int) override { peak_.store(in_use_.load()); }

private:
  static size_t round(size_t nbytes) { return (nbytes + 63) / 64 * 64; }
  std::atomic<size_t> in_use_{0}, peak_{0};
};

Backend*& slot(DeviceType t) {
  static Backend* backends[kNumDeviceTypes] = {nullptr, nullptr};
  return backends[static_cast<int>(t)];
}

}  // namespace

void register_backend(DeviceType type, Backend* backend) { slot(type) = backend; }

bool has_backend(DeviceType type) { return type == DeviceType::CPU || slot(type) != nullptr; }

Backend& backend_for(Device device) {
  if (device.is_cpu()) {
    static CpuBackend cpu;
    return cpu;
  }
  Backend* b = slot(device.type);
  COLT5_CHECK(b != nullptr, "device ", device, ": this build of colt5 has no CUDA support "
              "(configure with -Dcuda=enabled on a machine with the CUDA toolkit)");
  return *b;
}

bool cuda_is_available() { return cuda_device_count() > 0; }
int cuda_device_count() {
  Backend* b = slot(DeviceType::CUDA);
  return b ? b->device_count() : 0;
}
void synchronize(Device device) { backend_for(device).synchronize(device.index); }
SyncStats sync_stats(Device device) { return backend_for(device).sync_stats(device.index); }
void reset_sync_stats(Device device) { backend_for(device).reset_sync_stats(device.index); }
size_t memory_allocated(Device device) { return backend_for(device).memory_allocated(device.index); }
size_t max_memory_allocated(Device device) { return backend_for(device).max_memory_allocated(device.index); }
void reset_peak_memory(Device device) { backend_for(device).reset_peak_memory(device.index); }
void empty_cache(Device device) { backend_for(device).empty_cache(device.index); }

namespace {
std::atomic<bool> g_allow_tf32{false};
}
void set_allow_tf32(bool on) { g_allow_tf32 = on; }
bool allow_tf32() { return g_allow_tf32; }

void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t nbytes) {
  if (nbytes == 0) return;
  // Any copy that touches a GPU is done by the GPU's backend.
  Backend& b = backend_for(dst_device.is_cuda() ? dst_device : src_device);
  b.copy(dst, dst_device, src, src_device, nbytes);
}

Storage::Storage(size_t nbytes, Device device) : nbytes_(nbytes), device_(device) {
  data_ = backend_for(device).allocate(nbytes, device.index);
}

Storage::~Storage() {
  if (data_) backend_for(device_).deallocate(data_, nbytes_, device_.index);
}

}  // namespace colt5
