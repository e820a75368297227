// Golden parity on the CPU in float64: every fixture of tests/golden (or of $COLT5_GOLDEN_DIR)
// replayed through the parity runner must match the PyTorch reference within 1e-9 relative error
// (output, every input and parameter gradient, router indices exactly). And the runner itself:
// a configuration key, tensor name, op or module it does not understand fails the case; a
// perturbed reference fails with the error reported; it runs on any folder of such files.
#include <doctest/doctest.h>

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "autograd/ops.h"
#include "nn/json_read.h"
#include "nn/safetensors.h"
#include "tests/parity/parity.h"

using namespace colt5;
using colt5::parity::golden_dir;
using colt5::parity::golden_path;
using doctest::Contains;

namespace {

namespace fs = std::filesystem;

// A scratch folder, removed at the end of the test.
struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& tag) {
    path = fs::temp_directory_path() / ("colt5_golden_" + tag + "_" + std::to_string(::getpid()));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

// Copy `name` from the golden folder into dir as `new_name`, letting `edit` change its config
// JSON and tensors first.
std::string copy_fixture(const std::string& name, const fs::path& dir, const std::string& new_name,
                         const std::function<void(nlohmann::json&, nn::StateDict&)>& edit) {
  nn::SafetensorsFile f = nn::read_safetensors(golden_dir() + "/" + name + ".safetensors");
  nlohmann::json cfg = nn::parse_json_untrusted(f.metadata.at("config"), name + ": metadata 'config'");
  edit(cfg, f.tensors);
  f.metadata["config"] = cfg.dump();
  const std::string path = (dir / (new_name + ".safetensors")).string();
  nn::write_safetensors(path, f.tensors, f.metadata);
  return path;
}

}  // namespace

TEST_CASE("golden: every fixture matches the PyTorch reference on the CPU in float64 (1e-9)") {
  const std::string dir = golden_dir();
  INFO("fixtures from " << dir);
  std::vector<parity::CaseResult> results = parity::run_dir(dir, {kCPU, DType::Float64, 1e-9});
  REQUIRE(results.size() >= 18);
  int routers = 0;
  for (const auto& r : results) {
    INFO(parity::format_result(r));
    CHECK(r.ran);
    CHECK(r.ok);
    CHECK(r.max_error() <= 1e-9);
    CHECK(!r.errors.empty());
    if (r.kind.find("Router") != std::string::npos) {
      ++routers;
      CHECK(r.has_indices);
      CHECK(r.indices_ok);
    }
  }
  CHECK(routers >= 4);
}

TEST_CASE("golden: a configuration key the runner does not understand fails the case") {
  TempDir tmp("unknown_key");
  // A top-level key.
  parity::CaseResult r = parity::run_case(
      copy_fixture("routed_ff", tmp.path, "extra_key", [](nlohmann::json& c, nn::StateDict&) { c["bogus_option"] = 3; }));
  CHECK_FALSE(r.ok);
  CHECK_FALSE(r.ran);
  CHECK(r.failure.find("bogus_option") != std::string::npos);
  CHECK(parity::format_result(r).find("FAIL") == 0);

  // A key inside router_kwargs.
  r = parity::run_case(copy_fixture("routed_ff", tmp.path, "extra_router_kwarg", [](nlohmann::json& c, nn::StateDict&) {
    c["router_kwargs"] = {{"n_iters", 50}, {"mystery", true}};
  }));
  CHECK_FALSE(r.ok);
  CHECK(r.failure.find("mystery") != std::string::npos);

  // A key of a router fixture.
  r = parity::run_case(copy_fixture("router_coor_descent_0", tmp.path, "router_extra",
                                    [](nlohmann::json& c, nn::StateDict&) { c["triton_checkpoint_segments"] = 4; }));
  CHECK_FALSE(r.ok);
  CHECK(r.failure.find("triton_checkpoint_segments") != std::string::npos);

  // A wrongly typed value is a failure too.
  r = parity::run_case(copy_fixture("routed_ff", tmp.path, "wrong_type",
                                    [](nlohmann::json& c, nn::StateDict&) { c["light_ff_mult"] = "half"; }));
  CHECK_FALSE(r.ok);
  CHECK(r.failure.find("light_ff_mult") != std::string::npos);

  // Unknown module and op names.
  r = parity::run_case(copy_fixture("routed_ff", tmp.path, "unknown_module",
                                    [](nlohmann::json& c, nn::StateDict&) { c["module"] = "RoutedMystery"; }));
  CHECK_FALSE(r.ok);
  CHECK(r.failure.find("RoutedMystery") != std::string::npos);
  r = parity::run_case(copy_fixture("sinkhorn", tmp.path, "unknown_op",
                                    [](nlohmann::json& c, nn::StateDict&) { c["op"] = "mystery_op"; }));
  CHECK_FALSE(r.ok);
  CHECK(r.failure.find("mystery_op") != std::string::npos);
}

TEST_CASE("golden: tensors the runner does not understand fail the case") {
  TempDir tmp("unknown_tensor");
  // An input the module does not take.
  parity::CaseResult r = parity::run_case(copy_fixture("routed_ff", tmp.path, "extra_input", [](nlohmann::json&, nn::StateDict& t) {
    t["input.context"] = t.at("input.x");
  }));
  CHECK_FALSE(r.ok);
  CHECK(r.failure.find("context") != std::string::npos);
  // A parameter the module does not have (strict load_state_dict).
  r = parity::run_case(copy_fixture("routed_ff", tmp.path, "extra_param", [](nlohmann::json&, nn::StateDict& t) {
    t["param.mystery.weight"] = t.at("param.router.routing_token");
  }));
  CHECK_FALSE(r.ok);
  CHECK(r.failure.find("mystery.weight") != std::string::npos);
  // A missing parameter.
  r = parity::run_case(copy_fixture("routed_ff", tmp.path, "missing_param",
                                    [](nlohmann::json&, nn::StateDict& t) { t.erase("param.heavy_ff.1.bias"); }));
  CHECK_FALSE(r.ok);
  CHECK(r.failure.find("heavy_ff.1.bias") != std::string::npos);
  // An unknown kind of tensor.
  r = parity::run_case(copy_fixture("sinkhorn", tmp.path, "extra_tensor",
                                    [](nlohmann::json&, nn::StateDict& t) { t["aux.mystery"] = t.at("output"); }));
  CHECK_FALSE(r.ok);
  CHECK(r.failure.find("aux.mystery") != std::string::npos);
}

TEST_CASE("golden: a wrong reference is reported with its error, and wrong indices fail") {
  TempDir tmp("perturbed");
  // Output off by a relative 1e-6.
  parity::CaseResult r = parity::run_case(copy_fixture("routed_ff", tmp.path, "perturbed_output", [](nlohmann::json&, nn::StateDict& t) {
    t["output"] = mul_scalar(t.at("output"), 1.0 + 1e-6);
  }));
  CHECK(r.ran);
  CHECK_FALSE(r.ok);
  REQUIRE(!r.errors.empty());
  CHECK(r.errors[0].name == "output");
  CHECK(r.errors[0].err > 1e-7);
  CHECK(r.errors[0].err < 1e-5);
  CHECK(r.failure.find("output") != std::string::npos);
  // A parameter gradient off.
  r = parity::run_case(copy_fixture("routed_ff", tmp.path, "perturbed_grad", [](nlohmann::json&, nn::StateDict& t) {
    t["grad.param.heavy_ff.1.weight"] = add_scalar(t.at("grad.param.heavy_ff.1.weight"), 1e-3);
  }));
  CHECK_FALSE(r.ok);
  CHECK(r.failure.find("grad.param.heavy_ff.1.weight") != std::string::npos);
  // Swapped router indices.
  r = parity::run_case(copy_fixture("router_coor_descent_2", tmp.path, "swapped_indices", [](nlohmann::json&, nn::StateDict& t) {
    t["aux.indices"] = flip(t.at("aux.indices"), 1);
  }));
  CHECK(r.ran);
  CHECK(r.has_indices);
  CHECK_FALSE(r.indices_ok);
  CHECK_FALSE(r.ok);
  // The default tolerances.
  CHECK(parity::default_tolerance(DType::Float64) == 1e-9);
  CHECK(parity::default_tolerance(DType::Float32) == 1e-4);
}

TEST_CASE("golden: the runner works on any folder of fixtures") {
  TempDir tmp("folder");
  copy_fixture("router_cum_softmax", tmp.path, "a_router", [](nlohmann::json&, nn::StateDict&) {});
  copy_fixture("coor_descent_1", tmp.path, "b_op", [](nlohmann::json&, nn::StateDict&) {});
  std::vector<parity::CaseResult> results = parity::run_dir(tmp.path.string());
  REQUIRE(results.size() == 2);
  CHECK(results[0].name == "a_router");
  CHECK(results[1].name == "b_op");
  for (const auto& r : results) {
    INFO(parity::format_result(r));
    CHECK(r.ok);
  }
  CHECK_THROWS_AS(parity::list_fixtures((tmp.path / "no_such_folder").string()), colt5::Error);
  // A file that is not a fixture fails its case, it does not stop the run.
  parity::CaseResult bad = parity::run_case((tmp.path / "missing.safetensors").string());
  CHECK_FALSE(bad.ok);
  CHECK(!bad.failure.empty());
}

TEST_CASE("golden: every module frees its graph (no tensor left alive after a case)") {
  const std::string dir = golden_dir();
  for (const std::string& path : parity::list_fixtures(dir)) {
    CAPTURE(path);
    const int64_t before = live_tensor_count();
    parity::CaseResult r = parity::run_case(path, {kCPU, DType::Float64, 1e-9});
    CHECK(r.ok);
    CHECK(live_tensor_count() == before);
  }
}

TEST_CASE("golden: a fixture that lacks an expected gradient or output fails the case") {
  TempDir dir("missing");
  struct Drop {
    const char* fixture;
    const char* tensor;
    const char* failure;
  };
  for (const Drop& d : {Drop{"routed_ff", "grad.input.x", "lacks 'grad.input.x'"},
                        Drop{"routed_ff", "grad.param.router.routing_token", "lacks 'grad.param.router.routing_token'"},
                        Drop{"heavy_attention", "grad.input.normalized_scores_q", "lacks 'grad.input.normalized_scores_q'"},
                        Drop{"rmsnorm", "output", "no tensor 'output'"},
                        Drop{"rmsnorm", "upstream_grad", "no tensor 'upstream_grad'"}}) {
    CAPTURE(d.tensor);
    const std::string path = copy_fixture(d.fixture, dir.path, "drop",
                                          [&](nlohmann::json&, nn::StateDict& t) { REQUIRE(t.erase(d.tensor) == 1); });
    const parity::CaseResult r = parity::run_case(path);
    CHECK_FALSE(r.ok);
    CHECK(r.failure.find(d.failure) != std::string::npos);
  }
  // The untouched fixture, copied the same way, passes: the failures above come from the drop.
  const parity::CaseResult r = parity::run_case(copy_fixture("routed_ff", dir.path, "same", [](auto&, auto&) {}));
  CHECK(r.ok);
}
