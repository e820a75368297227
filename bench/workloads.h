// The workloads of colt5_bench: one list, one name per row, the same names as
// bench/reference_bench.py uses for the PyTorch reference (bench/README.md has the table).
//
// A name is <what>/<pass>/<shape>: "block/fwdbwd/b2n8192" is the ConditionalRoutedTransformerBlock
// forward + backward at batch 2, 8192 tokens. Passes:
//   fwd      the forward alone, under NoGradGuard (no graph kept);
//   fwdbwd   forward on an input that requires grad, backward of sum(out * g) for a fixed random
//            g, then every gradient (module parameters and input) dropped;
//   a "_step" workload is a whole training step (forward, loss, backward, optimizer step).
// Inputs are float32 randn from fixed generators, masks all True (none passed where a module
// takes an optional mask), parameters initialised from Generator(0) as the modules do.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/device.h"

namespace colt5::bench {

// What a workload has built on its device: the call to time and what a row reports beside it.
struct Prepared {
  std::function<void()> call;  // one timed call
  int64_t tokens_per_call = 0; // > 0: the row reports tokens/s
  int warmup = -1, reps = -1;  // >= 0: overrides the command's (for very slow rows)
  std::string note;
};

struct Workload {
  std::string name;
  DeviceType device;  // the device it is defined for
  bool quick;         // in the --quick subset
  std::string what;   // one line for the table
  std::function<Prepared(Device)> prepare;
};

const std::vector<Workload>& workloads();

}  // namespace colt5::bench
