#include "cuda/context.h"

#include <atomic>

#include <cstdlib>
#include <memory>

#include "core/backend.h"
#include "cuda/check.h"

namespace colt5::cuda {

// ---- error checking ----

void throw_cuda_error(cudaError_t err, const char* what, const char* file, int line) {
  cudaGetLastError();  // clear a sticky-free error so later calls are not poisoned by this one
  fail(str("CUDA error ", int(err), " (", cudaGetErrorName(err), ": ", cudaGetErrorString(err), ") in ", what,
           " at ", file, ":", line));
}

void throw_cublas_error(cublasStatus_t st, const char* what, const char* file, int line) {
  fail(str("cuBLAS error ", int(st), " (", cublasGetStatusString(st), ") in ", what, " at ", file, ":", line));
}

bool sync_after_each_kernel() {
  static const bool on = [] {
    const char* v = std::getenv("COLT5_CUDA_SYNC");
    return v && v[0] && v[0] != '0';
  }();
  return on;
}

void check_launch(const char* kernel, cudaStream_t stream, const char* file, int line) {
  cudaError_t err = cudaGetLastError();
  if (err == cudaSuccess && sync_after_each_kernel()) err = cudaStreamSynchronize(stream);
  if (err != cudaSuccess) throw_cuda_error(err, kernel, file, line);
}

// ---- deferred device-side checks ----

DeferredChecks::~DeferredChecks() { release(); }

std::vector<std::function<void(int64_t)>> DeferredChecks::take_pending() {
  std::vector<std::function<void(int64_t)>> pending;
  pending.swap(raise_);
  return pending;
}

void DeferredChecks::release() {
  // At process exit the driver may already be shutting down: free quietly.
  if (dev_) cudaFree(dev_);
  if (host_) cudaFreeHost(host_);
  dev_ = nullptr;
  host_ = nullptr;
  raise_.clear();
}

unsigned long long* DeferredChecks::reserve(int device) {
  COLT5_CHECK(!full(), "cuda: internal error: no free check slot (the caller waits first)");
  if (!dev_) {  // once per device: the slots, cleared, and their pinned mirror
    CUDA_CHECK(cudaSetDevice(device));
    CUDA_CHECK(cudaMalloc(&dev_, kSlots * 2 * sizeof(unsigned long long)));
    CUDA_CHECK(cudaMemset(dev_, 0, kSlots * 2 * sizeof(unsigned long long)));
    CUDA_CHECK(cudaMallocHost(&host_, kSlots * 2 * sizeof(unsigned long long)));
    raise_.reserve(kSlots);
  }
  raise_.emplace_back();  // no raise until set_raise: a launch that failed reports nothing
  return dev_ + 2 * (raise_.size() - 1);
}

void DeferredChecks::set_raise(unsigned long long* slot, std::function<void(int64_t)> raise) {
  const size_t i = size_t(slot - dev_) / 2;
  COLT5_CHECK(dev_ && slot >= dev_ && i + 1 == raise_.size(),
              "cuda: internal error: a check's verdict was set after a wait or out of order");
  raise_[i] = std::move(raise);
}

void DeferredChecks::enqueue_readback(cudaStream_t stream) {
  if (raise_.empty()) return;
  CUDA_CHECK(cudaMemcpyAsync(host_, dev_, raise_.size() * 2 * sizeof(unsigned long long), cudaMemcpyDeviceToHost,
                             stream));
}

void DeferredChecks::raise_reported(cudaStream_t stream) {
  if (raise_.empty()) return;
  // Take the list first: a raise may copy to the host (to scan the bad index), which waits again.
  std::vector<std::function<void(int64_t)>> raise;
  raise.swap(raise_);
  raise_.reserve(kSlots);
  CUDA_CHECK(cudaMemsetAsync(dev_, 0, raise.size() * 2 * sizeof(unsigned long long), stream));
  for (size_t i = 0; i < raise.size(); ++i)
    if (host_[2 * i] && raise[i]) raise[i](static_cast<int64_t>(host_[2 * i + 1]));
}

void wait(DeviceContext& ctx) {
  ctx.checks.enqueue_readback(ctx.stream);
  ++ctx.host_waits;
  CUDA_CHECK(cudaStreamSynchronize(ctx.stream));
  ctx.checks.raise_reported(ctx.stream);
}

// ---- caching allocator ----

size_t CachingAllocator::round_size(size_t n) {
  constexpr size_t kSmall = 512, kLarge = size_t(2) << 20, kLargeFrom = size_t(1) << 20;
  if (n == 0) return 0;
  if (n < kLargeFrom) return (n + kSmall - 1) / kSmall * kSmall;
  return (n + kLarge - 1) / kLarge * kLarge;
}

void* CachingAllocator::allocate(size_t nbytes) {
  if (nbytes == 0) return nullptr;
  const size_t size = round_size(nbytes);
  std::lock_guard<std::mutex> lock(mu_);
  auto it = free_.find(size);
  void* p = nullptr;
  if (it != free_.end() && !it->second.empty()) {
    p = it->second.back();
    it->second.pop_back();
    cached_ -= size;
  } else {
    CUDA_CHECK(cudaSetDevice(device_));
    cudaError_t err = cudaMalloc(&p, size);
    if (err == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      release_cached_locked();  // give the cache back to the driver and try once more
      err = cudaMalloc(&p, size);
    }
    if (err == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      size_t free_b = 0, total_b = 0;
      cudaMemGetInfo(&free_b, &total_b);
      fail(str("cuda:", device_, ": out of memory: tried to allocate ", nbytes, " bytes (", double(nbytes) / (1 << 20),
               " MiB); the device has ", double(free_b) / (1 << 20), " MiB free of ", double(total_b) / (1 << 20),
               " MiB, and colt5 holds ", double(in_use_) / (1 << 20), " MiB in live tensors"));
    }
    if (err != cudaSuccess) throw_cuda_error(err, "cudaMalloc", __FILE__, __LINE__);
  }
  in_use_ += size;
  peak_ = std::max(peak_, in_use_);
  return p;
}

namespace {
// Set by the exit handler once the device state is released; tensors destroyed after that
// (statics) give their memory straight back to the driver.
std::atomic<bool> g_shut_down{false};
}  // namespace

void CachingAllocator::deallocate(void* ptr, size_t nbytes) {
  if (!ptr) return;
  const size_t size = round_size(nbytes);
  std::lock_guard<std::mutex> lock(mu_);
  if (g_shut_down) {
    cudaFree(ptr);
    in_use_ -= size;
    return;
  }
  // The block may still be read by queued kernels of this device's single stream; a later
  // allocation of it is used only by work queued after those kernels, so reuse is safe.
  free_[size].push_back(ptr);
  in_use_ -= size;
  cached_ += size;
}

void CachingAllocator::release_cached_locked() {
  cudaSetDevice(device_);
  cudaDeviceSynchronize();
  for (auto& [size, blocks] : free_)
    for (void* p : blocks) cudaFree(p);
  free_.clear();
  cached_ = 0;
}

void CachingAllocator::empty_cache() {
  std::lock_guard<std::mutex> lock(mu_);
  release_cached_locked();
}

CachingAllocator::~CachingAllocator() {
  // At process exit the driver may already be shutting down: free quietly.
  for (auto& [size, blocks] : free_)
    for (void* p : blocks) cudaFree(p);
}

size_t CachingAllocator::bytes_in_use() const { std::lock_guard<std::mutex> l(mu_); return in_use_; }
size_t CachingAllocator::peak_bytes() const { std::lock_guard<std::mutex> l(mu_); return peak_; }
size_t CachingAllocator::bytes_cached() const { std::lock_guard<std::mutex> l(mu_); return cached_; }
void CachingAllocator::reset_peak() { std::lock_guard<std::mutex> l(mu_); peak_ = in_use_; }

// ---- device contexts ----

DeviceContext::DeviceContext(int d) : device(d), allocator(d) {
  CUDA_CHECK(cudaSetDevice(d));
  CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  CUBLAS_CHECK(cublasCreate(&cublas));
  CUBLAS_CHECK(cublasSetStream(cublas, stream));
}

DeviceContext::~DeviceContext() {
  if (cublas) cublasDestroy(cublas);
  if (stream) cudaStreamDestroy(stream);
}

int device_count() {
  static const int n = [] {
    int count = 0;
    cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess) {
      // cudaErrorInsufficientDriver (no driver) or cudaErrorNoDevice: no GPU here.
      cudaGetLastError();
      return 0;
    }
    return count;
  }();
  return n;
}

bool is_available() { return device_count() > 0; }

namespace {
struct Registry {
  std::mutex mu;
  std::vector<std::unique_ptr<DeviceContext>> contexts;
};
Registry& registry();

// At exit: wait for queued work, free every cached block, destroy the cuBLAS handles and
// streams, so that the driver (and compute-sanitizer's leak check) sees nothing left behind.
void shut_down() {
  Registry& r = registry();
  {
    // Verdicts no wait has read are dropped (the program ends without asking). Their captured
    // tensors free memory through context(), which takes r.mu: destroy them outside the lock.
    std::vector<std::vector<std::function<void(int64_t)>>> dropped;
    {
      std::lock_guard<std::mutex> lock(r.mu);
      for (auto& ctx : r.contexts)
        if (ctx) dropped.push_back(ctx->checks.take_pending());
    }
  }
  std::lock_guard<std::mutex> lock(r.mu);
  for (auto& ctx : r.contexts) {
    if (!ctx) continue;
    cudaSetDevice(ctx->device);
    cudaStreamSynchronize(ctx->stream);
    ctx->allocator.empty_cache();
    ctx->checks.release();
    if (ctx->cublas) cublasDestroy(ctx->cublas);
    if (ctx->stream) cudaStreamDestroy(ctx->stream);
    ctx->cublas = nullptr;
    ctx->stream = nullptr;
  }
  g_shut_down = true;
}
Registry& registry() {
  // Leaked on purpose: contexts must outlive every static Tensor, and the driver tears down
  // its own state at exit.
  static Registry* r = new Registry;
  return *r;
}
}  // namespace

DeviceContext& context(int device) {
  const int n = device_count();
  COLT5_CHECK(n > 0, "cuda:", device, ": no CUDA device is available on this machine (no driver or no GPU)");
  COLT5_CHECK(device >= 0 && device < n, "cuda: device index ", device, " is out of range: this machine has ", n,
              " GPU(s)");
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  if (r.contexts.empty()) {
    r.contexts.resize(n);
    std::atexit(shut_down);
  }
  if (!r.contexts[device]) r.contexts[device] = std::make_unique<DeviceContext>(device);
  return *r.contexts[device];
}

size_t memory_allocated(int device) { return context(device).allocator.bytes_in_use(); }
size_t max_memory_allocated(int device) { return context(device).allocator.peak_bytes(); }
void reset_peak_memory(int device) { context(device).allocator.reset_peak(); }
void empty_cache(int device) { context(device).allocator.empty_cache(); }
void synchronize(int device) {
  DeviceContext& ctx = context(device);
  CUDA_CHECK(cudaSetDevice(device));
  wait(ctx);
}

// ---- the Backend that core/ sees ----

namespace {

class CudaBackend final : public Backend {
public:
  void* allocate(size_t nbytes, int index) override { return context(index).allocator.allocate(nbytes); }
  void deallocate(void* ptr, size_t nbytes, int index) override {
    context(index).allocator.deallocate(ptr, nbytes);
  }
  void copy(void* dst, Device dd, const void* src, Device sd, size_t nbytes) override {
    if (nbytes == 0) return;
    if (dd.is_cuda() && sd.is_cuda() && dd.index != sd.index) {
      // Between GPUs: order after the source's queued work, copy, then let the destination wait.
      CUDA_CHECK(cudaSetDevice(sd.index));
      wait(context(sd.index));
      CUDA_CHECK(cudaMemcpyPeerAsync(dst, dd.index, src, sd.index, nbytes, context(dd.index).stream));
      CUDA_CHECK(cudaSetDevice(dd.index));
      wait(context(dd.index));
      return;
    }
    const int dev = dd.is_cuda() ? dd.index : sd.index;
    DeviceContext& ctx = context(dev);
    CUDA_CHECK(cudaSetDevice(dev));
    const cudaMemcpyKind kind = dd.is_cuda() ? (sd.is_cuda() ? cudaMemcpyDeviceToDevice : cudaMemcpyHostToDevice)
                                             : cudaMemcpyDeviceToHost;
    CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, kind, ctx.stream));
    if (kind == cudaMemcpyDeviceToHost) ++ctx.device_to_host_copies;
    // Host memory is pageable and may be freed or read right after we return: wait for
    // transfers that touch the host. Device-to-device copies stay asynchronous.
    if (kind != cudaMemcpyDeviceToDevice) wait(ctx);
  }
  int device_count() override { return cuda::device_count(); }
  void synchronize(int index) override { cuda::synchronize(index); }
  SyncStats sync_stats(int index) override {
    const DeviceContext& ctx = context(index);
    return {ctx.host_waits, ctx.device_to_host_copies};
  }
  void reset_sync_stats(int index) override {
    DeviceContext& ctx = context(index);
    ctx.host_waits = ctx.device_to_host_copies = 0;
  }
  size_t memory_allocated(int index) override { return context(index).allocator.bytes_in_use(); }
  size_t max_memory_allocated(int index) override { return context(index).allocator.peak_bytes(); }
  void reset_peak_memory(int index) override { context(index).allocator.reset_peak(); }
  void empty_cache(int index) override { context(index).allocator.empty_cache(); }
};

const bool registered = [] {
  static CudaBackend backend;
  register_backend(DeviceType::CUDA, &backend);
  return true;
}();

}  // namespace

}  // namespace colt5::cuda
