// bench_cases: the op case list (tests/cases/) in perf mode, as ggml's `test-backend-ops perf`:
// the very cases that the CPU gradcheck suite and the GPU suite check are timed here, forward
// and forward + backward, on one device and dtype.
//
//   bench_cases [--device cpu|cuda] [--dtype float32|float64] [--only SUBSTRING]...
//               [--warmup 3] [--reps 20] [--json FILE]
//
// The cases are small (gradcheck sizes), so a row measures what one call of the op costs beyond
// its arithmetic: kernel launches, allocations and every host wait it makes. That is the figure
// which adds up across the hundreds of calls of a training step; the large-shape throughput of
// single ops is bench_ops' and colt5_bench's business. Timing is bench/timing.h's (CUDA events
// on the GPU, a steady clock on the CPU, warm-up, median). The backward is that of
// sum(out * g) with a fixed random g, as the GPU suite's.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "bench/timing.h"
#include "core/backend.h"
#include "core/error.h"
#include "tests/cases/cases.h"

using namespace colt5;
using nlohmann::json;

namespace {

struct Args {
  std::string device = "cpu", dtype = "float32", json_path;
  std::vector<std::string> only;
  int warmup = 3, reps = 20;
};

bool selected(const cases::OpCase& c, const Args& a) {
  if (a.only.empty()) return true;
  for (const std::string& s : a.only)
    if (c.name().find(s) != std::string::npos) return true;
  return false;
}

json time_case(const cases::OpCase& c, Device dev, DType dt, const Args& a) {
  const TensorList in = c.inputs(dt, dev, 21);
  json row = {{"case", c.name()}};
  {
    NoGradGuard ng;
    const bench::Timing t = bench::time_calls(dev, [&] { (void)c.fn(in); }, a.warmup, a.reps);
    row["forward_us"] = t.median_ms * 1e3;
  }
  if (c.differentiable) {
    const Tensor probe = c.fn(in);
    if (probe.requires_grad()) {
      Generator gen(5);
      const Tensor g = randn(probe.shape(), DType::Float64, kCPU, &gen).to(dt).to(dev);
      const bench::Timing t = bench::time_calls(dev, [&] {
        for (Tensor x : in)
          if (x.defined() && x.requires_grad()) x.zero_grad();  // no accumulation across calls
        sum(c.fn(in) * g).backward();
      }, a.warmup, a.reps);
      row["forward_backward_us"] = t.median_ms * 1e3;
    }
  }
  return row;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  CLI::App app{"bench_cases: the op case list (tests/cases) timed per case, forward and forward+backward"};
  app.add_option("--device", a.device, "cpu or cuda")->check(CLI::IsMember({"cpu", "cuda"}));
  app.add_option("--dtype", a.dtype, "float32 or float64")->check(CLI::IsMember({"float32", "float64"}));
  app.add_option("--only", a.only, "keep the cases whose name contains this (repeatable)");
  app.add_option("--warmup", a.warmup, "untimed calls before the timed ones")->check(CLI::Range(0, 1000));
  app.add_option("--reps", a.reps, "timed calls (the median is reported)")->check(CLI::Range(1, 100000));
  app.add_option("--json", a.json_path, "also write the rows to this file as JSON");
  app.failure_message(CLI::FailureMessage::help);  // a bad flag prints the usage
  CLI11_PARSE(app, argc, argv);

  try {
    const Device dev = bench::device_from_flag(a.device);
    const DType dt = a.dtype == "float64" ? DType::Float64 : DType::Float32;
    json rows = json::array();
    std::printf("%-64s %12s %12s\n", "case", "fwd us", "fwd+bwd us");
    for (const cases::OpCase& c : cases::all_cases()) {
      if (!selected(c, a)) continue;
      json row = time_case(c, dev, dt, a);
      char fb[32] = "-";
      if (row.contains("forward_backward_us"))
        std::snprintf(fb, sizeof fb, "%.1f", row["forward_backward_us"].get<double>());
      std::printf("%-64s %12.1f %12s\n", c.name().substr(0, 64).c_str(), row["forward_us"].get<double>(), fb);
      rows.push_back(std::move(row));
    }
    COLT5_CHECK(!rows.empty(), "bench_cases: flag --only: no case matches");
    if (!a.json_path.empty()) {
      std::ofstream f(a.json_path);
      f << json{{"program", "bench_cases"}, {"device", a.device}, {"dtype", a.dtype}, {"warmup", a.warmup},
                {"reps", a.reps}, {"results", rows}}.dump(1)
        << "\n";
      COLT5_CHECK(bool(f), "bench_cases: flag --json: cannot write ", a.json_path);
    }
  } catch (const Error& e) {
    std::fprintf(stderr, "bench_cases: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
