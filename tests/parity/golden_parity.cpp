// golden_parity: run every PyTorch-reference fixture of a folder through colt5 and report the
// errors (see tests/parity/parity.h).
//
//   golden_parity --dir DIR [--device cpu|cuda|cuda:N] [--dtype float64|float32] [--tol X]
//                 [--case NAME]...
//
// Prints one line per case (PASS/FAIL, name, the output's and every gradient's relative error,
// whether the router indices match, and why a case failed) and a summary. Exit status: 0 when
// every case passed, 1 when one failed, 2 for a usage error (bad argument, no fixtures, no GPU).
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <string>
#include <vector>

#include "core/backend.h"
#include "tests/parity/parity.h"

namespace {

void usage(const char* prog) {
  std::fprintf(stderr,
               "usage: %s --dir DIR [--device cpu|cuda|cuda:N] [--dtype float64|float32] [--tol X] [--case NAME]...\n"
               "  runs every *.safetensors fixture of DIR (or only the named cases) and exits non-zero on any\n"
               "  failure; default tolerance 1e-9 (float64) or 1e-4 (float32), relative to max|reference|\n",
               prog);
}

}  // namespace

int main(int argc, char** argv) {
  using namespace colt5;
  std::string dir;
  std::vector<std::string> cases;
  parity::ParityOptions opts;
  try {
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      auto value = [&]() -> std::string {
        if (i + 1 >= argc) fail(str("option ", a, " needs a value"));
        return argv[++i];
      };
      if (a == "--dir") {
        dir = value();
      } else if (a == "--device") {
        opts.device = Device(value());
      } else if (a == "--dtype") {
        const std::string v = value();
        if (v == "float64") opts.dtype = DType::Float64;
        else if (v == "float32") opts.dtype = DType::Float32;
        else fail(str("--dtype expected float64 or float32, got '", v, "'"));
      } else if (a == "--tol") {
        const std::string v = value();
        char* end = nullptr;
        const double t = std::strtod(v.c_str(), &end);
        if (end == v.c_str() || *end != '\0' || !(t >= 0)) fail(str("--tol expected a number >= 0, got '", v, "'"));
        opts.tol = t;
      } else if (a == "--case") {
        cases.push_back(value());
      } else if (a == "-h" || a == "--help") {
        usage(argv[0]);
        return 0;
      } else {
        fail(str("unknown argument '", a, "'"));
      }
    }
    if (dir.empty()) fail("--dir is required");
    if (opts.device.is_cuda() && !cuda_is_available())
      fail(str("--device ", opts.device.name(), ": no CUDA device available (no GPU, no driver or a CPU-only build)"));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "golden_parity: %s\n", e.what());
    usage(argv[0]);
    return 2;
  }

  std::vector<std::string> files;
  try {
    files = parity::list_fixtures(dir);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "golden_parity: %s\n", e.what());
    return 2;
  }
  if (!cases.empty()) {
    std::vector<std::string> picked;
    for (const auto& c : cases) {
      bool found = false;
      for (const auto& f : files)
        if (std::filesystem::path(f).stem() == c) {
          picked.push_back(f);
          found = true;
        }
      if (!found) {
        std::fprintf(stderr, "golden_parity: no fixture named '%s' in %s\n", c.c_str(), dir.c_str());
        return 2;
      }
    }
    files = picked;
  }
  if (files.empty()) {
    std::fprintf(stderr, "golden_parity: no *.safetensors fixtures in %s\n", dir.c_str());
    return 2;
  }

  const double tol = opts.tol.value_or(parity::default_tolerance(opts.dtype));
  std::printf("golden parity: %zu case(s) from %s on %s in %s, tolerance %.1e\n", files.size(), dir.c_str(),
              opts.device.name().c_str(), dtype_name(opts.dtype), tol);
  int failed = 0;
  for (const auto& f : files) {
    parity::CaseResult r = parity::run_case(f, opts);
    if (!r.ok) ++failed;
    std::printf("%s\n", parity::format_result(r).c_str());
    std::fflush(stdout);
  }
  std::printf("%zu passed, %d failed\n", files.size() - size_t(failed), failed);
  return failed == 0 ? 0 : 1;
}
