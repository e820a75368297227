#include "cuda/context.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <string>

#include <cstdlib>
#include <cstring>
#include <memory>

#include "core/backend.h"
#include "core/graph.h"
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

// ---- the launch profiler (COLT5_CUDA_PROFILE=1, cuda/check.h) ----

bool profiling() {
  static const bool on = [] {
    const char* v = std::getenv("COLT5_CUDA_PROFILE");
    return v && v[0] && v[0] != '0';
  }();
  return on;
}

namespace {

class LaunchProfiler {
public:
  void mark(const char* name, cudaStream_t stream) {
    cudaStreamCaptureStatus capturing = cudaStreamCaptureStatusNone;
    if (cudaStreamIsCapturing(stream, &capturing) != cudaSuccess || capturing != cudaStreamCaptureStatusNone) return;
    std::lock_guard<std::mutex> lock(mu_);
    cudaEvent_t e = nullptr;
    if (!spare_.empty()) {
      e = spare_.back();
      spare_.pop_back();
    } else if (cudaEventCreate(&e) != cudaSuccess) {
      return;
    }
    if (cudaEventRecord(e, stream) != cudaSuccess) return;
    pending_.emplace_back(name, e);
    if (pending_.size() >= 4096) resolve_locked();
  }

  // At exit: the table.
  void report() {
    std::lock_guard<std::mutex> lock(mu_);
    resolve_locked();
    if (totals_.empty()) return;
    std::vector<std::pair<std::string, std::pair<double, int64_t>>> rows(totals_.begin(), totals_.end());
    std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.second.first > b.second.first; });
    double all = 0;
    for (const auto& r : rows) all += r.second.first;
    std::fprintf(stderr, "\nCOLT5_CUDA_PROFILE: GPU time between consecutive launches, by kernel (%.3f ms in all)\n",
                 all);
    std::fprintf(stderr, "%10s %7s %10s %9s  %s\n", "total ms", "share", "calls", "mean us", "kernel");
    for (const auto& [name, t] : rows)
      std::fprintf(stderr, "%10.3f %6.1f%% %10lld %9.2f  %s\n", t.first, 100 * t.first / all,
                   static_cast<long long>(t.second), 1000 * t.first / double(t.second), name.c_str());
  }

private:
  void resolve_locked() {
    if (pending_.empty()) return;
    if (cudaEventSynchronize(pending_.back().second) != cudaSuccess) return;
    for (auto& [name, e] : pending_) {
      if (last_) {
        float ms = 0;
        if (cudaEventElapsedTime(&ms, last_, e) == cudaSuccess) {
          auto& t = totals_[name];
          t.first += ms;
          t.second += 1;
        }
        spare_.push_back(last_);
      }
      last_ = e;
    }
    pending_.clear();
  }

  std::mutex mu_;
  std::vector<std::pair<const char*, cudaEvent_t>> pending_;
  std::vector<cudaEvent_t> spare_;
  cudaEvent_t last_ = nullptr;
  std::map<std::string, std::pair<double, int64_t>> totals_;
};

LaunchProfiler& launch_profiler() {
  static LaunchProfiler* p = new LaunchProfiler;  // leaked: used from the exit handler
  return *p;
}

}  // namespace

void profile_mark(const char* name, cudaStream_t stream) {
  if (profiling()) launch_profiler().mark(name, stream);
}

void check_launch(const char* kernel, cudaStream_t stream, const char* file, int line) {
  if (profiling()) launch_profiler().mark(kernel, stream);
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

void DeferredChecks::ensure_slots(int device) {
  if (dev_) return;
  // once: the slots, cleared, and their pinned mirror
  CUDA_CHECK(cudaSetDevice(device));
  CUDA_CHECK(cudaMalloc(&dev_, kSlots * 2 * sizeof(unsigned long long)));
  CUDA_CHECK(cudaMemset(dev_, 0, kSlots * 2 * sizeof(unsigned long long)));
  CUDA_CHECK(cudaMallocHost(&host_, kSlots * 2 * sizeof(unsigned long long)));
  std::memset(host_, 0, kSlots * 2 * sizeof(unsigned long long));
  raise_.reserve(kSlots);
}

void DeferredChecks::clear_async(cudaStream_t stream) {
  CUDA_CHECK(cudaMemsetAsync(dev_, 0, kSlots * 2 * sizeof(unsigned long long), stream));
}

void DeferredChecks::raise_from_mirror() const {
  for (size_t i = 0; i < raise_.size(); ++i)
    if (host_[2 * i] && raise_[i]) raise_[i](static_cast<int64_t>(host_[2 * i + 1]));
}

unsigned long long* DeferredChecks::reserve(int device) {
  COLT5_CHECK(!full(), "cuda: internal error: no free check slot (the caller waits first)");
  ensure_slots(device);  // first use (a graph's slots are made before its capture begins)
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
  COLT5_CHECK(!ctx.capturing(), "cuda:", ctx.device, ": the host cannot wait for the GPU while a CUDA graph is ",
              "being captured (a value read back, a copy to host memory, a synchronize, or COLT5_CUDA_SYNC=1 inside ",
              "the captured code); do it before or after the capture");
  ctx.checks.enqueue_readback(ctx.stream);
  ++ctx.host_waits;
  CUDA_CHECK(cudaStreamSynchronize(ctx.stream));
  std::vector<const DeferredChecks*> graphs;
  graphs.swap(ctx.replayed);
  ctx.checks.raise_reported(ctx.stream);
  for (const DeferredChecks* g : graphs) g->raise_from_mirror();
}

// ---- pinned staging for copies from host memory ----

void* HostStaging::take(size_t n, cudaStream_t stream, uint64_t& host_waits) {
  if (n > kSlab) return nullptr;
  if (!buf_) {
    CUDA_CHECK(cudaMallocHost(&buf_, kSlab * kSlabs));
    for (cudaEvent_t& e : done_) CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
  }
  if (used_ + n > kSlab) {  // this slab is full: mark where its copies end, move to the next
    CUDA_CHECK(cudaEventRecord(done_[slab_], stream));
    pending_[slab_] = true;
    slab_ = (slab_ + 1) % kSlabs;
    used_ = 0;
    if (pending_[slab_]) {
      const cudaError_t q = cudaEventQuery(done_[slab_]);
      if (q == cudaErrorNotReady) {
        ++host_waits;
        CUDA_CHECK(cudaEventSynchronize(done_[slab_]));
      } else if (q != cudaSuccess) {
        throw_cuda_error(q, "cudaEventQuery", __FILE__, __LINE__);
      }
      pending_[slab_] = false;
    }
  }
  void* p = buf_ + size_t(slab_) * kSlab + used_;
  used_ += (n + 255) / 256 * 256;
  return p;
}

void HostStaging::release() {
  if (!buf_) return;
  for (cudaEvent_t& e : done_) cudaEventDestroy(e);
  cudaFreeHost(buf_);
  buf_ = nullptr;
}

// ---- caching allocator ----

size_t CachingAllocator::round_size(size_t n) {
  constexpr size_t kSmall = 512, kLarge = size_t(2) << 20, kLargeFrom = size_t(1) << 20;
  if (n == 0) return 0;
  if (n < kLargeFrom) return (n + kSmall - 1) / kSmall * kSmall;
  return (n + kLarge - 1) / kLarge * kLarge;
}

void* CachingAllocator::malloc_locked(size_t size, size_t nbytes) {
  CUDA_CHECK(cudaSetDevice(device_));
  void* p = nullptr;
  cudaError_t err;
  if (capturing_) {
    // cudaMalloc is not a stream operation and the capture does not record it; the graph only
    // needs the block to exist. Capture mode "relaxed" for this thread lets the call through.
    cudaStreamCaptureMode mode = cudaStreamCaptureModeRelaxed;
    CUDA_CHECK(cudaThreadExchangeStreamCaptureMode(&mode));
    err = cudaMalloc(&p, size);
    CUDA_CHECK(cudaThreadExchangeStreamCaptureMode(&mode));
  } else {
    err = cudaMalloc(&p, size);
    if (err == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      release_cached_locked();  // give the cache back to the driver and try once more
      err = cudaMalloc(&p, size);
    }
  }
  if (err == cudaErrorMemoryAllocation) {
    cudaGetLastError();
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    fail(str("cuda:", device_, ": out of memory: tried to allocate ", nbytes, " bytes (", double(nbytes) / (1 << 20),
             " MiB); the device has ", double(free_b) / (1 << 20), " MiB free of ", double(total_b) / (1 << 20),
             " MiB, and colt5 holds ", double(in_use_) / (1 << 20), " MiB in live tensors",
             capturing_ ? " (during a CUDA graph capture, where the cache cannot be released)" : ""));
  }
  if (err != cudaSuccess) throw_cuda_error(err, "cudaMalloc", __FILE__, __LINE__);
  return p;
}

void* CachingAllocator::allocate(size_t nbytes) {
  if (nbytes == 0) return nullptr;
  const size_t size = round_size(nbytes);
  std::lock_guard<std::mutex> lock(mu_);
  auto take = [&](std::map<size_t, std::vector<void*>>& lists) -> void* {
    auto it = lists.find(size);
    if (it == lists.end() || it->second.empty()) return nullptr;
    void* p = it->second.back();
    it->second.pop_back();
    cached_ -= size;
    return p;
  };
  void* p = nullptr;
  if (capturing_) {
    // the pool's own blocks first, then the cache, then the driver; the block joins the pool
    p = take(pool_free_[capturing_]);
    if (!p) p = take(free_);
    if (!p) p = malloc_locked(size, nbytes);
    owner_[p] = capturing_;
  } else {
    p = take(free_);
    if (!p) p = malloc_locked(size, nbytes);
  }
  in_use_ += size;
  peak_ = std::max(peak_, in_use_);
  return p;
}

void CachingAllocator::begin_pool(uint64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  COLT5_CHECK(capturing_ == 0, "cuda:", device_, ": internal error: a graph pool while another is open");
  capturing_ = id;
}

void CachingAllocator::end_pool() {
  std::lock_guard<std::mutex> lock(mu_);
  capturing_ = 0;
}

void CachingAllocator::release_pool(uint64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = pool_free_.find(id);
  if (it != pool_free_.end()) {
    for (auto& [size, blocks] : it->second)
      for (void* p : blocks) free_[size].push_back(p);  // still counted in cached_
    pool_free_.erase(it);
  }
  for (auto o = owner_.begin(); o != owner_.end();) o = o->second == id ? owner_.erase(o) : std::next(o);
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
  // A block of a graph pool, or any block freed during a capture, stays in that pool.
  in_use_ -= size;
  cached_ += size;
  auto it = owner_.find(ptr);
  if (it != owner_.end()) {
    pool_free_[it->second][size].push_back(ptr);
  } else if (capturing_) {
    owner_[ptr] = capturing_;
    pool_free_[capturing_][size].push_back(ptr);
  } else {
    free_[size].push_back(ptr);
  }
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
  for (auto& [id, lists] : pool_free_)
    for (auto& [size, blocks] : lists)
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
  if (profiling()) launch_profiler().report();
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
    ctx->staging.release();
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
    if (kind == cudaMemcpyHostToDevice) {
      COLT5_CHECK(!ctx.capturing(), "cuda:", dev, ": a copy from host memory cannot be part of a CUDA graph (every ",
                  "replay would read the host buffer again); copy into the device tensor before the capture or replay");
      // Through the pinned ring: asynchronous, and the caller's buffer is free on return.
      if (void* pinned = ctx.staging.take(nbytes, ctx.stream, ctx.host_waits)) {
        std::memcpy(pinned, src, nbytes);
        CUDA_CHECK(cudaMemcpyAsync(dst, pinned, nbytes, kind, ctx.stream));
        return;
      }
    }
    if (kind == cudaMemcpyDeviceToHost) {
      // wait() refuses inside a capture; say so before the copy is queued into the graph
      COLT5_CHECK(!ctx.capturing(), "cuda:", dev, ": the host cannot read device memory while a CUDA graph is being ",
                  "captured (item(), to(kCPU) or a host-side check inside the captured code)");
      ++ctx.device_to_host_copies;
    }
    CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, kind, ctx.stream));
    // Pageable host memory may be freed or read right after we return: wait for transfers
    // that touch it. Device-to-device copies stay asynchronous.
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
  std::unique_ptr<Graph> capture_graph(int index, const std::function<void()>& body) override {
    return cuda::capture_graph(index, body);
  }
};

const bool registered = [] {
  static CudaBackend backend;
  register_backend(DeviceType::CUDA, &backend);
  return true;
}();

}  // namespace

}  // namespace colt5::cuda
