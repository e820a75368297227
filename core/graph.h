// CUDA graphs: record everything a piece of code launches on a GPU's stream once, then run all
// of it again with one launch per replay. A training step of a small model is hundreds of short
// kernels; launched one by one from the host, the GPU waits for the launches (host latency),
// replayed as a graph it does not.
//
//   std::unique_ptr<Graph> g = capture_graph(device, [&] { step(); });  // recorded, not run
//   g->replay();                                                        // runs the step
//
// What a capture records is the kernels with their arguments and the memory they touch, so a
// replay repeats exactly that: the same shapes, the same addresses, the same scalar arguments.
// Inputs that change from step to step must be written into the tensors the capture read (in
// place, before each replay), and values such as a learning rate must be read by the kernels
// from device memory (nn::AdamW does). Memory: while the capture runs, every block it allocates
// or frees belongs to the graph's own pool, kept while the graph lives, so the tensors it made
// (a loss, the gradients) hold each replay's results and nothing outside the graph reuses them.
//
// What breaks a capture (it throws colt5::Error, nothing was run, and the caller can do the
// work without a graph instead): anything that makes the host wait for the GPU (reading a value
// back with item() or to(kCPU), synchronize), a copy from host memory (its buffer would be read
// again at every replay), COLT5_CUDA_SYNC=1 (it waits after every checked launch), or a capture
// inside a capture. Device-side index checks work: their verdicts are read at the first host
// wait after each replay, as without a graph; a graph replayed again before such a wait waits
// first, so that no verdict is lost.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>

#include "core/device.h"

namespace colt5 {

class Graph {
public:
  virtual ~Graph() = default;
  // Launch the recorded work on the device's stream (asynchronous, like any launch).
  virtual void replay() = 0;
  // Number of nodes (kernels, copies, memsets) the capture recorded.
  virtual size_t nodes() const = 0;
};

// Capture `body` on `device` (a CUDA device; the CPU has no graphs: throws). Waits for the
// device's queued work first.
std::unique_ptr<Graph> capture_graph(Device device, const std::function<void()>& body);

}  // namespace colt5
