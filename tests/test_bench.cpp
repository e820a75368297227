// The benchmark program (bench/colt5_bench) on the CPU: it runs a workload and writes the JSON
// rows that bench/report.py reads, reports a workload that fails as a row instead of crashing,
// and refuses flags that select nothing. Also the CPU allocator's statistics, which its memory
// column relies on. (No timing is asserted: speed lives in bench/, not in tests.)
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "autograd/ops.h"
#include "core/backend.h"
#include "tests/run_program.h"

using namespace colt5;
using colt5::testing::run_program;

namespace {

testing::Run run_bench(const std::string& args) { return run_program("COLT5_BENCH_EXE", COLT5_BENCH_EXE, args); }

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("colt5_test_bench_" + name)).string();
}

}  // namespace

TEST_CASE("cpu allocator: bytes in use and their peak follow the tensors") {
  const size_t base = memory_allocated(kCPU);
  reset_peak_memory(kCPU);
  CHECK(max_memory_allocated(kCPU) == base);
  {
    Tensor a = zeros({1000}, DType::Float64);  // 8000 bytes, a multiple of 64
    CHECK(memory_allocated(kCPU) == base + 8000);
    {
      Tensor b = zeros({10}, DType::Float32);  // 40 bytes, counted as 64
      CHECK(memory_allocated(kCPU) == base + 8064);
    }
    CHECK(memory_allocated(kCPU) == base + 8000);
  }
  CHECK(memory_allocated(kCPU) == base);
  CHECK(max_memory_allocated(kCPU) == base + 8064);
  reset_peak_memory(kCPU);
  CHECK(max_memory_allocated(kCPU) == base);
}

TEST_CASE("colt5_bench: a CPU workload gives a row of the JSON schema") {
  const std::string json_path = temp_path("rows.json");
  std::filesystem::remove(json_path);
  const testing::Run r =
      run_bench("--device cpu --only coor_descent/fwd/2x4096 --warmup 1 --reps 3 --json " + json_path);
  CAPTURE(r.output);
  REQUIRE(r.status == 0);
  CHECK(r.output.find("| coor_descent/fwd/2x4096 |") != std::string::npos);
  std::ifstream f(json_path);
  const nlohmann::json j = nlohmann::json::parse(f);
  CHECK(j["program"] == "colt5_bench");
  CHECK(j["device"] == "cpu");
  REQUIRE(j["results"].size() == 1);
  const nlohmann::json& row = j["results"][0];
  CHECK(row["workload"] == "coor_descent/fwd/2x4096");
  CHECK(row["impl"] == "colt5");
  CHECK(row["status"] == "ok");
  REQUIRE(row["times_ms"].size() == 3);
  const double median = row["ms"], lo = row["ms_min"], hi = row["ms_max"];
  CHECK(lo > 0);
  CHECK(lo <= median);
  CHECK(median <= hi);
  CHECK(row["memory"] == "rss");  // measured in a forked child, as the reference's rows
  CHECK(row["alloc_peak_bytes"].get<int64_t>() >= 2 * 4096 * 4);  // at least the scores s
  std::filesystem::remove(json_path);
}

TEST_CASE("colt5_bench: flags that select nothing are an error naming the device") {
  const testing::Run r = run_bench("--device cpu --only no-such-workload");
  CHECK(r.status == 1);
  CHECK(r.output.find("no workload of device cpu matches the flags") != std::string::npos);
  const testing::Run bad = run_bench("--device tpu");
  CHECK(bad.status != 0);
  CHECK(bad.output.find("--device") != std::string::npos);
}

TEST_CASE("colt5_bench: --list names the CPU workloads of the benchmark") {
  const testing::Run r = run_bench("--device cpu --list");
  REQUIRE(r.status == 0);
  for (const char* name : {"coor_descent/fwdbwd/2x4096", "block/fwdbwd/b1n2048d256", "local_mha/fwdbwd/b1n2048d256",
                           "lm_step/b4n512d128", "train_step/cpu-preset"}) {
    CAPTURE(name);
    CHECK(r.output.find(name) != std::string::npos);
  }
}

TEST_CASE("bench_cases: the op case list in perf mode times the cases it selects") {
  const std::string json_path = temp_path("cases.json");
  std::filesystem::remove(json_path);
  const testing::Run r = run_program("COLT5_BENCH_CASES_EXE", COLT5_BENCH_CASES_EXE,
                                     "--device cpu --only rms_norm --warmup 1 --reps 2 --json " + json_path);
  CAPTURE(r.output);
  REQUIRE(r.status == 0);
  std::ifstream f(json_path);
  const nlohmann::json j = nlohmann::json::parse(f);
  CHECK(j["program"] == "bench_cases");
  REQUIRE(j["results"].size() >= 2);  // tests/cases/norm.cpp has several rms_norm cases
  for (const nlohmann::json& row : j["results"]) {
    CHECK(row["case"].get<std::string>().rfind("rms_norm ", 0) == 0);
    CHECK(row["forward_us"].get<double>() > 0);
    CHECK(row["forward_backward_us"].get<double>() > 0);  // rms_norm is differentiable
  }
  std::filesystem::remove(json_path);
  const testing::Run none = run_program("COLT5_BENCH_CASES_EXE", COLT5_BENCH_CASES_EXE, "--only no-such-case");
  CHECK(none.status == 1);
  CHECK(none.output.find("no case matches") != std::string::npos);
}
