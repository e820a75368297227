// CUDA graphs (core/graph.h): capture on the device's one stream, replay with cudaGraphLaunch.
//
// A capture, in order: wait for the queued work (so that the graph starts from a finished
// stream and no eager check is pending); open the graph's memory pool in the allocator and point
// the device's launch checks at the graph's own slots; begin the capture (thread-local mode:
// another thread's CUDA calls are not disturbed); record a memset that clears those slots; run
// the body; record the copy of the slots to their pinned mirror; end the capture and
// instantiate. If the body throws, or the driver invalidated the capture, everything is undone
// and the error is passed on, prefixed with "capture_graph:".
#include <algorithm>
#include <atomic>
#include <string>

#include "core/graph.h"
#include "cuda/check.h"
#include "cuda/context.h"

namespace colt5::cuda {

namespace {

class CudaGraph final : public Graph {
public:
  CudaGraph(int device, uint64_t pool) : device_(device), pool_(pool) {}
  ~CudaGraph() override {
    DeviceContext& ctx = context(device_);
    cudaSetDevice(device_);
    // A replay may still run: let it finish before its memory goes back to the cache. A
    // verdict it left unread is dropped with it.
    if (exec_) cudaStreamSynchronize(ctx.stream);
    ctx.replayed.erase(std::remove(ctx.replayed.begin(), ctx.replayed.end(), &checks_), ctx.replayed.end());
    if (exec_) cudaGraphExecDestroy(exec_);
    ctx.allocator.release_pool(pool_);
    checks_.release();
  }

  void replay() override {
    DeviceContext& ctx = context(device_);
    CUDA_CHECK(cudaSetDevice(device_));
    COLT5_CHECK(!ctx.capturing(), "graph replay: cuda:", device_, " is capturing a graph (a replay cannot be captured)");
    // Replayed again before a wait: read the last replay's verdicts first (its mirror would be
    // overwritten).
    if (std::find(ctx.replayed.begin(), ctx.replayed.end(), &checks_) != ctx.replayed.end()) wait(ctx);
    CUDA_CHECK(cudaGraphLaunch(exec_, ctx.stream));
    ctx.replayed.push_back(&checks_);
  }

  size_t nodes() const override { return nodes_; }

  int device_;
  uint64_t pool_;
  DeferredChecks checks_;
  cudaGraphExec_t exec_ = nullptr;
  size_t nodes_ = 0;
};

// Undo the capture state of ctx (after the capture ended, successfully or not).
void close_capture(DeviceContext& ctx) {
  ctx.capture_checks = nullptr;
  ctx.allocator.end_pool();
}

}  // namespace

std::unique_ptr<Graph> capture_graph(int device, const std::function<void()>& body) {
  DeviceContext& ctx = context(device);
  CUDA_CHECK(cudaSetDevice(device));
  COLT5_CHECK(!ctx.capturing(), "capture_graph: cuda:", device, " is already capturing a graph (captures do not nest)");
  wait(ctx);
  static std::atomic<uint64_t> next_pool{1};
  auto g = std::make_unique<CudaGraph>(device, next_pool++);
  g->checks_.ensure_slots(device);
  ctx.allocator.begin_pool(g->pool_);
  ctx.capture_checks = &g->checks_;
  cudaError_t err = cudaStreamBeginCapture(ctx.stream, cudaStreamCaptureModeThreadLocal);
  if (err != cudaSuccess) {
    close_capture(ctx);
    throw_cuda_error(err, "cudaStreamBeginCapture", __FILE__, __LINE__);
  }
  cudaGraph_t graph = nullptr;
  try {
    g->checks_.clear_async(ctx.stream);
    body();
    g->checks_.enqueue_readback(ctx.stream);
  } catch (const std::exception& e) {
    cudaStreamEndCapture(ctx.stream, &graph);  // ends the (now invalid) capture; the graph is dropped
    if (graph) cudaGraphDestroy(graph);
    cudaGetLastError();
    close_capture(ctx);
    fail(str("capture_graph: ", e.what()));
  }
  err = cudaStreamEndCapture(ctx.stream, &graph);
  close_capture(ctx);
  if (err != cudaSuccess) {
    if (graph) cudaGraphDestroy(graph);
    throw_cuda_error(err, "cudaStreamEndCapture (capture_graph: the driver invalidated the capture)", __FILE__,
                     __LINE__);
  }
  err = cudaGraphGetNodes(graph, nullptr, &g->nodes_);
  if (err == cudaSuccess) err = cudaGraphInstantiate(&g->exec_, graph, 0);
  cudaGraphDestroy(graph);
  if (err != cudaSuccess) throw_cuda_error(err, "cudaGraphInstantiate", __FILE__, __LINE__);
  CUDA_CHECK(cudaGraphUpload(g->exec_, ctx.stream));
  return g;
}

}  // namespace colt5::cuda
