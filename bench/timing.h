// How colt5_bench times a call and reads its memory, on either device.
//
// Method (the same as bench/reference_bench.py's, so the two columns compare):
//   GPU: CUDA events recorded on colt5's stream around each call; `warmup` untimed calls first,
//        then `reps` timed ones; the median is reported (min, max and every time too). Peak
//        memory is the caching allocator's peak of bytes held by live tensors over the warm-up
//        and the timed calls, parameters and inputs included (as torch.cuda.max_memory_allocated).
//   CPU: std::chrono::steady_clock around each call, same warm-up and median. The allocator's
//        peak is reported as on the GPU; for the comparison with PyTorch, whose CPU allocator
//        keeps no statistics, each CPU workload can also run in a forked child process whose
//        peak resident set size (VmHWM, reset through /proc/self/clear_refs) above its resident
//        size at the start is the "rss" figure (run_isolated below).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/device.h"

namespace colt5::bench {

struct Timing {
  std::vector<double> times_ms;  // every timed call, in order
  double median_ms = 0, min_ms = 0, max_ms = 0;
  size_t alloc_peak_bytes = 0;   // the allocator's peak over warm-up + timed calls
};

// Time `call` on `device`: `warmup` untimed calls, then `reps` timed ones (reps >= 1).
Timing time_calls(Device device, const std::function<void()>& call, int warmup, int reps);

// The device a --device flag names: "cpu", "cuda" (an error when no CUDA device is available) or
// "auto" (cuda when there is one, else cpu).
Device device_from_flag(const std::string& name);

// Resident set size of this process now, and its peak since the last reset, in bytes (0 where
// /proc is unreadable). reset_peak_rss() returns false when the kernel does not allow it.
size_t current_rss_bytes();
size_t peak_rss_bytes();
bool reset_peak_rss();

// Run `body` in a forked child process and return what it wrote to its string (the child's
// result, e.g. JSON), or throw colt5::Error if the child failed. Used on the CPU only: a fork
// of a process that has initialised CUDA may not use the GPU.
std::string run_isolated(const std::function<std::string()>& body);

}  // namespace colt5::bench
