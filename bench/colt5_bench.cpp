// colt5_bench: times colt5 on the workloads of bench/workloads.cpp and writes the rows as JSON in
// the schema bench/reference_bench.py writes for the PyTorch reference, so that
// bench/report.py can put the two side by side (bench/run.sh runs all three).
//
//   colt5_bench [--device auto|cpu|cuda] [--quick] [--only SUBSTRING]... [--warmup 3] [--reps 10]
//               [--json FILE] [--no-isolate] [--list]
//
// Each row: the workload's median time over `reps` calls after `warmup` untimed ones (CUDA events
// on the GPU, a steady clock on the CPU; bench/timing.h), min / max / every time, and peak
// memory: on the GPU the caching allocator's peak (parameters and inputs included); on the CPU
// the peak resident set size above the start of the row, in a forked child per row (what the
// PyTorch side measures too, as its CPU allocator keeps no statistics), with the allocator's
// peak beside it. TF32 stays off. A failing workload becomes a row with status "error: ...".
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "bench/timing.h"
#include "bench/workloads.h"
#include "core/backend.h"
#include "core/error.h"

#ifdef COLT5_HAVE_CUDA
#include <cuda_runtime.h>
#endif

using namespace colt5;
using nlohmann::json;

namespace {

struct Args {
  std::string device = "auto";
  bool quick = false, isolate = true, list = false;
  std::vector<std::string> only;
  int warmup = 3, reps = 10;
  std::string json_path;
};

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

std::string cpu_model() {
  std::ifstream f("/proc/cpuinfo");
  for (std::string line; std::getline(f, line);)
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown CPU";
}

json header(Device dev) {
  json h = {{"program", "colt5_bench"}, {"device", dev.is_cuda() ? "cuda" : "cpu"}, {"date", utc_now()},
            {"threads", std::thread::hardware_concurrency()}, {"tf32", allow_tf32()},
            {"versions", {{"colt5", "0.1.0"}}}, {"driver", nullptr}, {"results", json::array()}};
  h["device_name"] = cpu_model();
#ifdef COLT5_HAVE_CUDA
  if (dev.is_cuda()) {
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, dev.index) == cudaSuccess) h["device_name"] = prop.name;
    int rt = 0, drv = 0;
    cudaRuntimeGetVersion(&rt);
    cudaDriverGetVersion(&drv);
    h["versions"]["cuda_runtime"] = std::to_string(rt / 1000) + "." + std::to_string(rt % 1000 / 10);
    h["versions"]["cuda_driver_api"] = std::to_string(drv / 1000) + "." + std::to_string(drv % 1000 / 10);
  }
#endif
  return h;
}

bool selected(const bench::Workload& w, Device dev, const Args& a) {
  if (w.device != dev.type || (a.quick && !w.quick)) return false;
  if (a.only.empty()) return true;
  for (const std::string& s : a.only)
    if (w.name.find(s) != std::string::npos) return true;
  return false;
}

// One row of the JSON schema (bench/README.md).
json measure(const bench::Workload& w, Device dev, const Args& a, bool rss) {
  size_t rss0 = 0;
  if (rss) {
    bench::reset_peak_rss();
    rss0 = bench::current_rss_bytes();
  }
  bench::Prepared p = w.prepare(dev);
  const int warmup = p.warmup >= 0 ? p.warmup : a.warmup, reps = p.reps >= 0 ? p.reps : a.reps;
  const bench::Timing t = bench::time_calls(dev, p.call, warmup, reps);
  json r = {{"workload", w.name}, {"impl", "colt5"}, {"status", "ok"}, {"ms", t.median_ms}, {"ms_min", t.min_ms},
            {"ms_max", t.max_ms}, {"times_ms", t.times_ms}, {"reps", reps}, {"warmup", warmup},
            {"tokens_per_s", nullptr}, {"compile_s", nullptr}, {"note", p.note}, {"what", w.what}};
  if (p.tokens_per_call > 0) r["tokens_per_s"] = double(p.tokens_per_call) / (t.median_ms * 1e-3);
  if (rss) {
    const size_t peak = bench::peak_rss_bytes();
    r["peak_bytes"] = peak > rss0 ? peak - rss0 : 0;
    r["memory"] = "rss";
    r["alloc_peak_bytes"] = t.alloc_peak_bytes;
  } else {
    r["peak_bytes"] = t.alloc_peak_bytes;
    r["memory"] = "allocator";
  }
  return r;
}

json run_row(const bench::Workload& w, Device dev, const Args& a) {
  try {
    if (dev.is_cpu() && a.isolate)
      return json::parse(bench::run_isolated([&] { return measure(w, dev, a, true).dump(); }));
    json r = measure(w, dev, a, false);
    empty_cache(dev);
    return r;
  } catch (const std::exception& e) {
    std::string msg = e.what();
    if (msg.size() > 300) msg = msg.substr(0, 300) + "...";
    if (dev.is_cuda()) empty_cache(dev);
    return {{"workload", w.name}, {"impl", "colt5"}, {"status", "error: " + msg}, {"what", w.what}};
  }
}

void write_json(const json& j, const std::string& path) {
  if (path.empty()) return;
  std::ofstream f(path + ".tmp");
  f << j.dump(1) << "\n";
  f.close();
  COLT5_CHECK(f && std::rename((path + ".tmp").c_str(), path.c_str()) == 0, "colt5_bench: cannot write ", path);
}

std::string fmt_ms(double ms) {
  char buf[32];
  std::snprintf(buf, sizeof buf, ms < 10 ? "%.3f" : "%.1f", ms);
  return buf;
}

std::string mib(const json& r) {
  if (!r.contains("peak_bytes") || r["peak_bytes"].is_null()) return "";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", r["peak_bytes"].get<double>() / (1 << 20));
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  CLI::App app{"colt5_bench: colt5 on the benchmark workloads (bench/README.md)"};
  app.add_option("--device", a.device, "auto (cuda when there is a GPU), cpu or cuda")->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  app.add_flag("--quick", a.quick, "only the rows of the quick subset");
  app.add_option("--only", a.only, "only workloads whose name contains one of these");
  app.add_option("--warmup", a.warmup, "untimed calls before the timed ones")->check(CLI::Range(0, 1000));
  app.add_option("--reps", a.reps, "timed calls (the median is reported)")->check(CLI::Range(1, 100000));
  app.add_option("--json", a.json_path, "write the rows to this file (rewritten after every row)");
  app.add_flag("--no-isolate", [&](int64_t) { a.isolate = false; }, "CPU: run every row in this process (no RSS figure)");
  app.add_flag("--list", a.list, "print the workload names of the device and exit");
  app.failure_message(CLI::FailureMessage::help);  // a bad flag prints the usage
  CLI11_PARSE(app, argc, argv);

  try {
    const Device dev = bench::device_from_flag(a.device);
    std::vector<const bench::Workload*> rows;
    for (const bench::Workload& w : bench::workloads())
      if (selected(w, dev, a)) rows.push_back(&w);
    if (a.list) {
      for (const auto* w : rows) std::printf("%s\t%s\n", w->name.c_str(), w->what.c_str());
      return 0;
    }
    COLT5_CHECK(!rows.empty(), "colt5_bench: no workload of device ", dev, " matches the flags");
    json out = header(dev);
    std::printf("colt5_bench on %s (%s), warm-up %d, median of %d\n\n", out["device_name"].get<std::string>().c_str(),
                dev.is_cuda() ? "cuda" : "cpu", a.warmup, a.reps);
    std::printf("| workload | ms | peak MiB | tokens/s | status |\n|---|---:|---:|---:|---|\n");
    std::fflush(stdout);
    for (const auto* w : rows) {
      json r = run_row(*w, dev, a);
      const bool ok = r["status"] == "ok";
      std::string tps;
      if (ok && !r["tokens_per_s"].is_null()) tps = std::to_string(static_cast<int64_t>(r["tokens_per_s"].get<double>()));
      std::printf("| %s | %s | %s | %s | %s |\n", w->name.c_str(), ok ? fmt_ms(r["ms"].get<double>()).c_str() : "",
                  ok ? mib(r).c_str() : "", tps.c_str(), r["status"].get<std::string>().c_str());
      std::fflush(stdout);
      out["results"].push_back(std::move(r));
      write_json(out, a.json_path);
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "colt5_bench: error: %s\n", e.what());
    return 1;
  }
}
