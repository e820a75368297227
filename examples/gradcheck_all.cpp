// gradcheck_all: check the gradient of every op of the case list (tests/cases/) in float64,
// and print one table row per case.
//
//   gradcheck_all                  every case, on the CPU
//   gradcheck_all softmax          only ops whose name contains "softmax"
//   gradcheck_all --device cuda    on the GPU (an error if this build or machine has none)
//
// For each differentiable case: analytic gradients (backward) against central finite
// differences, see autograd/gradcheck.h; "checked" counts the input elements compared, the
// errors are the largest over them. Cases whose output is not differentiable (indices) run
// their forward only. Exit status: 0 when every case passes, 1 when any fails, 2 on bad usage.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <set>
#include <string>
#include <vector>

#include <fmt/core.h>

#include "core/backend.h"
#include "tests/cases/cases.h"

using namespace colt5;

namespace {

struct Options {
  Device device = kCPU;
  std::string filter;  // substring of the op name; empty: every op
};

void print_usage(std::FILE* to) {
  fmt::print(to,
             "usage: gradcheck_all [--device cpu|cuda|cuda:N] [FILTER]\n"
             "  Gradcheck (float64) every op case of the test case list and print a table.\n"
             "  FILTER       run only ops whose name contains this text\n"
             "  --device D   where the inputs live (default cpu)\n"
             "  -h, --help   show this help\n");
}

// Returns false (after printing why) on bad usage; sets `help` for -h.
bool parse_args(int argc, char** argv, Options& opt, bool& help) {
  help = false;
  bool have_filter = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      help = true;
      return true;
    }
    std::string device_spec;
    if (arg == "--device") {
      if (i + 1 >= argc) {
        fmt::print(stderr, "gradcheck_all: --device needs a value (cpu, cuda or cuda:N)\n");
        return false;
      }
      device_spec = argv[++i];
    } else if (arg.rfind("--device=", 0) == 0) {
      device_spec = arg.substr(9);
    } else if (!arg.empty() && arg[0] == '-') {
      fmt::print(stderr, "gradcheck_all: unknown option '{}'\n", arg);
      return false;
    } else {
      if (have_filter) {
        fmt::print(stderr, "gradcheck_all: only one FILTER may be given, got '{}' and '{}'\n", opt.filter, arg);
        return false;
      }
      opt.filter = arg;
      have_filter = true;
      continue;
    }
    try {
      opt.device = Device(device_spec);
    } catch (const Error& e) {
      fmt::print(stderr, "gradcheck_all: {}\n", e.what());
      return false;
    }
  }
  return true;
}

// Whether tensors can be made on `d`; when not, `why` says so.
bool device_usable(Device d, std::string& why) {
  if (d.is_cpu()) return true;
  if (!has_backend(d.type)) {
    why = "this build of colt5 has no CUDA backend (configure with -Dcuda=enabled)";
    return false;
  }
  const int count = backend_for(d).device_count();
  if (d.index >= count) {
    why = count == 0 ? std::string("no CUDA device is visible on this machine")
                     : fmt::format("the machine has {} CUDA device(s), so cuda:{} does not exist", count, d.index);
    return false;
  }
  return true;
}

struct Row {
  std::string op, variant;
  std::string checked, abs_err, rel_err;
  double ms = 0;
  bool ok = false;
  std::string detail;  // the gradcheck message or the error, for failed rows
};

Row run_case(const cases::OpCase& c, Device device) {
  Row row{c.op, c.variant, "-", "-", "-", 0, false, ""};
  const auto t0 = std::chrono::steady_clock::now();
  try {
    TensorList inputs = c.inputs(DType::Float64, device, 7);
    if (c.differentiable) {
      GradcheckResult r = gradcheck(c.fn, inputs, c.grad);
      row.checked = fmt::format("{}", r.checked);
      row.abs_err = fmt::format("{:.2e}", r.max_abs_error);
      row.rel_err = fmt::format("{:.2e}", r.max_rel_error);
      row.ok = r.ok;
      if (!r.ok) row.detail = r.message;
    } else {
      NoGradGuard no_grad;
      Tensor out = c.fn(inputs);
      row.checked = "fwd only";
      row.ok = out.defined();
      if (!row.ok) row.detail = "the forward returned an undefined tensor";
    }
  } catch (const std::exception& e) {
    row.ok = false;
    row.detail = std::string("error: ") + e.what();
  }
  row.ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  return row;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  bool help = false;
  if (!parse_args(argc, argv, opt, help)) {
    print_usage(stderr);
    return 2;
  }
  if (help) {
    print_usage(stdout);
    return 0;
  }
  std::string why;
  if (!device_usable(opt.device, why)) {
    fmt::print(stderr, "gradcheck_all: --device {}: {}\n", opt.device.name(), why);
    return 2;
  }

  std::vector<cases::OpCase> selected;
  for (cases::OpCase& c : cases::all_cases())
    if (opt.filter.empty() || c.op.find(opt.filter) != std::string::npos) selected.push_back(std::move(c));
  if (selected.empty()) {
    fmt::print(stderr, "gradcheck_all: no op name contains '{}'\n", opt.filter);
    return 2;
  }

  fmt::print("gradcheck, float64, device {}{}\n\n", opt.device.name(),
             opt.filter.empty() ? std::string() : fmt::format(", ops matching '{}'", opt.filter));

  // Column widths from the names (the numeric columns have fixed widths).
  size_t w_op = 2, w_var = 7;
  for (const cases::OpCase& c : selected) {
    w_op = std::max(w_op, c.op.size());
    w_var = std::max(w_var, c.variant.size());
  }
  const auto print_row = [&](const std::string& op, const std::string& var, const std::string& checked,
                             const std::string& abs_err, const std::string& rel_err, const std::string& ms,
                             const std::string& result) {
    fmt::print("{:<{}}  {:<{}}  {:>8}  {:>11}  {:>11}  {:>9}  {}\n", op, w_op, var, w_var, checked, abs_err, rel_err, ms,
               result);
  };
  print_row("op", "variant", "checked", "max abs err", "max rel err", "time ms", "result");
  print_row(std::string(w_op, '-'), std::string(w_var, '-'), std::string(8, '-'), std::string(11, '-'),
            std::string(11, '-'), std::string(9, '-'), "------");

  std::set<std::string> ops;
  int failed = 0;
  double total_ms = 0;
  for (const cases::OpCase& c : selected) {
    Row row = run_case(c, opt.device);
    ops.insert(c.op);
    total_ms += row.ms;
    if (!row.ok) ++failed;
    print_row(row.op, row.variant, row.checked, row.abs_err, row.rel_err, fmt::format("{:.1f}", row.ms),
              row.ok ? "PASS" : "FAIL");
    if (!row.ok) fmt::print("    -> {}\n", row.detail);
    std::fflush(stdout);
  }

  fmt::print("\n{} ops, {} cases, {} failed ({:.2f} s)\n", ops.size(), selected.size(), failed, total_ms / 1000.0);
  return failed == 0 ? 0 : 1;
}
