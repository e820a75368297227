// bench_timeline: how busy the GPU is while colt5_bench's rows run, from a CUPTI timeline of every
// kernel, copy and memset (bench/timeline.h), for machines without nsys.
//
//   build/bench/bench_timeline --row lm_step/b4n2048 [--row ...] [--warmup 3] [--reps 5] [--top 20]
//
// For each row: `warmup` untimed calls, then `reps` calls recorded back to back and one device
// synchronisation. Printed: the recorded span, the GPU's busy time in it (the union of the
// activity intervals), the busy fraction, the idle gaps above 2 µs (count, total, the largest),
// and the kernels that took the most GPU time. Gaps are where the GPU waited for the host.
#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include <cstdio>
#include <string>
#include <vector>

#include "bench/timeline.h"
#include "bench/workloads.h"
#include "core/backend.h"
#include "core/error.h"

using namespace colt5;

int main(int argc, char** argv) {
  CLI::App app{"bench_timeline: the GPU's busy fraction over colt5_bench rows (CUPTI)"};
  std::vector<std::string> rows;
  int warmup = 3, reps = 5, top = 20;
  app.add_option("--row", rows, "a colt5_bench row name (colt5_bench --list); repeatable")->required();
  app.add_option("--warmup", warmup, "untimed calls first")->check(CLI::NonNegativeNumber);
  app.add_option("--reps", reps, "recorded calls")->check(CLI::PositiveNumber);
  app.add_option("--top", top, "kernels listed per row")->check(CLI::NonNegativeNumber);
  CLI11_PARSE(app, argc, argv);
  try {
    COLT5_CHECK(cuda_is_available(), "bench_timeline: no CUDA device is available");
    const Device dev = cuda_device(0);
    bench::Timeline timeline;
    for (const std::string& name : rows) {
      const bench::Workload* w = nullptr;
      for (const bench::Workload& x : bench::workloads())
        if (x.name == name) w = &x;
      COLT5_CHECK(w != nullptr, "flag --row: no workload named '", name, "' (colt5_bench --list)");
      COLT5_CHECK(w->device == DeviceType::CUDA, "flag --row: '", name, "' is a CPU workload");
      const bench::Prepared p = w->prepare(dev);
      for (int i = 0; i < warmup; ++i) p.call();
      synchronize(dev);
      timeline.start();
      for (int i = 0; i < reps; ++i) p.call();
      synchronize(dev);
      timeline.stop();
      const bench::TimelineSummary s = timeline.summary();
      fmt::print("{}: {} calls in {:.3f} ms ({:.3f} ms a call); GPU busy {:.3f} ms = {:.1f} %\n", name, reps,
                 s.span_ms, s.span_ms / reps, s.busy_ms, 100 * s.busy_fraction);
      fmt::print("  {} activities; {} idle gaps > 2 us, {:.3f} ms in all, the largest {:.1f} us\n", s.activities,
                 s.gaps, s.gap_ms, s.largest_gap_us);
      fmt::print("  {:>9} {:>6} {:>8} {:>9}  kernel\n", "ms", "%busy", "calls", "us/call");
      for (int i = 0; i < top && i < int(s.by_name.size()); ++i) {
        const auto& k = s.by_name[size_t(i)];
        fmt::print("  {:9.3f} {:6.1f} {:8} {:9.2f}  {}\n", k.total_ms, 100 * k.total_ms / s.busy_ms, k.calls,
                   1e3 * k.total_ms / double(k.calls), k.name);
      }
      std::fflush(stdout);
    }
  } catch (const Error& e) {
    fmt::print(stderr, "bench_timeline: {}\n", e.what());
    return 1;
  }
  return 0;
}
