// A GPU timeline without a profiler program: CUPTI's activity records (the interface nsys and
// ncu are built on) of every kernel, copy and memset the process runs while a Timeline is
// recording, with their start and end on the GPU's clock. Kernels launched from a replayed CUDA
// graph are recorded too.
//
// What it answers: how much of a span of wall time the GPU was doing anything. With intervals
// [s_i, e_i) of device work (kernels may overlap), busy = |union of the intervals|, and the busy
// fraction over a recorded span [t0, t1] (CUPTI timestamps taken by start() and stop(), the
// latter after the device has finished) is busy / (t1 - t0). Every idle stretch between the
// union's pieces is a gap: time where the GPU waited for the host (launch latency, a host wait,
// host-side work) or for nothing at all.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace colt5::bench {

struct Activity {
  std::string name;      // the kernel's (demangled-on-print) name, or "memcpy HtoD" / "memset" ...
  uint64_t start_ns = 0, end_ns = 0;
};

struct TimelineSummary {
  double span_ms = 0;           // t1 - t0
  double busy_ms = 0;           // the union of the activities inside [t0, t1]
  double busy_fraction = 0;     // busy / span
  int64_t activities = 0;
  int64_t gaps = 0;             // idle stretches of more than gap_threshold_us
  double gap_ms = 0;            // their total
  double largest_gap_us = 0;
  struct Kernel {
    std::string name;
    int64_t calls = 0;
    double total_ms = 0;
  };
  std::vector<Kernel> by_name;  // activities grouped by name, most time first
};

class Timeline {
public:
  Timeline();   // enables CUPTI's activity kinds (throws colt5::Error if CUPTI cannot)
  ~Timeline();  // disables them
  Timeline(const Timeline&) = delete;
  Timeline& operator=(const Timeline&) = delete;

  void start();  // forgets what was recorded, takes t0
  void stop();   // the caller has synchronised the device: flushes CUPTI's buffers, takes t1
  const std::vector<Activity>& activities() const { return acts_; }
  TimelineSummary summary(double gap_threshold_us = 2.0) const;

private:
  std::vector<Activity> acts_;
  uint64_t t0_ = 0, t1_ = 0;
};

}  // namespace colt5::bench
