// gradcheck: check the gradient of one op or one module, chosen by name, in float64 on the CPU
// or a GPU, and print the worst error of every input (and, for modules, every parameter).
//
//   gradcheck --list
//   gradcheck softmax --shape 3,5 --dim 0 --device cuda
//   gradcheck coor_descent --shape 2,16 --k 4
//   gradcheck ConditionalRoutedFeedForward --dim 8 --seq 12
//
// Method (autograd/gradcheck.h): for L(x) = sum(f(x) * r) with a fixed random r,
//   numeric_i  = (L(x + eps e_i) - L(x - eps e_i)) / (2 eps),   analytic_i = dL/dx_i (backward)
// and an element passes when |analytic - numeric| <= atol + rtol * |numeric|. Each input is
// checked on its own (only that leaf requires grad), so every row of the table is one input.
// Module parameters are perturbed in place, so the module sees them through its own forward.
//
// Exit status: 0 when every check passes, 1 when one fails, 2 on bad usage (unknown op or
// option, bad shape, incompatible shapes, CUDA unavailable).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include <fmt/core.h>

#include "core/backend.h"
#include "nn/nn.h"
#include "tests/cases/cases.h"

using namespace colt5;

namespace {

// Bad command line: printed, exit status 2.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// ---------------------------------------------------------------------------------------------
// Command line: one positional name, `--key value` options and `--flag` switches.

const std::set<std::string> kValueKeys = {
    "shape", "shape2", "dim", "dims", "device", "eps", "fd-eps", "atol", "rtol", "max-elements", "seed",
    "layout", "p", "lo", "hi", "c", "k", "n-iters", "eps-init", "eps-decay", "out", "seq", "batch", "heads",
    "dim-head", "window", "num-heavy", "num-heavy-kv", "num-routed-kv", "router", "temperature",
    "fetch-k-ratio", "mult", "light-ff-mult", "heavy-ff-mult", "context-seq", "num-routing-tokens", "classes"};
const std::set<std::string> kFlagKeys = {"list",   "help",       "mask",          "keepdim", "descending",
                                         "no-bias", "k-tensor",  "causal",        "no-null-q",
                                         "multiply-keys-by-score", "multiply-queries-by-score", "smallest"};

struct Args {
  std::string name;
  std::map<std::string, std::string> values;
  std::set<std::string> flags;
  mutable std::set<std::string> used;  // keys some builder read (the rest do not apply)

  bool has(const std::string& k) const {
    used.insert(k);
    return values.count(k) > 0;
  }
  bool flag(const std::string& k) const {
    used.insert(k);
    return flags.count(k) > 0;
  }
  std::string str(const std::string& k, const std::string& def) const {
    used.insert(k);
    auto it = values.find(k);
    return it == values.end() ? def : it->second;
  }
  int64_t integer(const std::string& k, int64_t def) const {
    used.insert(k);
    auto it = values.find(k);
    if (it == values.end()) return def;
    try {
      size_t pos = 0;
      const long long v = std::stoll(it->second, &pos);
      if (pos != it->second.size()) throw std::invalid_argument("trailing");
      return v;
    } catch (const std::exception&) {
      throw UsageError(fmt::format("option --{} expected an integer, got '{}'", k, it->second));
    }
  }
  double real(const std::string& k, double def) const {
    used.insert(k);
    auto it = values.find(k);
    if (it == values.end()) return def;
    try {
      size_t pos = 0;
      const double v = std::stod(it->second, &pos);
      if (pos != it->second.size()) throw std::invalid_argument("trailing");
      return v;
    } catch (const std::exception&) {
      throw UsageError(fmt::format("option --{} expected a number, got '{}'", k, it->second));
    }
  }
  std::optional<double> opt_real(const std::string& k) const {
    if (!has(k)) return std::nullopt;
    return real(k, 0);
  }
  std::optional<int64_t> opt_integer(const std::string& k) const {
    if (!has(k)) return std::nullopt;
    return integer(k, 0);
  }
  // A positive integer (sizes of modules).
  int64_t size(const std::string& k, int64_t def) const {
    const int64_t v = integer(k, def);
    if (v < 1) throw UsageError(fmt::format("option --{} expected an integer >= 1, got {}", k, v));
    return v;
  }
};

// "3,5", "3x5", "[3, 5]"; "[]" or "scalar" is a 0-dim tensor.
Shape parse_shape(const std::string& key, const std::string& text) {
  std::string s;
  for (char ch : text)
    if (ch != ' ' && ch != '[' && ch != ']' && ch != '(' && ch != ')') s += ch == 'x' ? ',' : ch;
  Shape shape;
  if (s.empty() || s == "scalar") return shape;
  size_t start = 0;
  while (true) {
    const size_t comma = s.find(',', start);
    const std::string part = s.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    bool digits = !part.empty() && part.size() < 10;
    for (char ch : part) digits = digits && ch >= '0' && ch <= '9';
    if (!digits)
      throw UsageError(fmt::format("option --{} expected sizes like 3,5 (non-negative integers), got '{}'", key, text));
    shape.push_back(std::stoll(part));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return shape;
}

std::string shape_str(const Shape& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) {
    if (i) out += ',';
    out += std::to_string(s[i]);
  }
  return out + "]";
}

// Flat row-major index -> "[i,j,k]".
std::string unravel(int64_t flat, const Shape& shape) {
  if (flat < 0) return "-";
  Shape idx(shape.size());
  for (size_t d = shape.size(); d-- > 0;) {
    idx[d] = shape[d] ? flat % shape[d] : 0;
    flat = shape[d] ? flat / shape[d] : 0;
  }
  return shape_str(idx);
}

Args parse_args(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "-h") arg = "--help";
    if (arg.rfind("--", 0) == 0) {
      std::string key = arg.substr(2), value;
      bool inline_value = false;
      if (auto eq = key.find('='); eq != std::string::npos) {
        value = key.substr(eq + 1);
        key = key.substr(0, eq);
        inline_value = true;
      }
      if (kFlagKeys.count(key)) {
        if (inline_value) throw UsageError(fmt::format("option --{} takes no value", key));
        a.flags.insert(key);
      } else if (kValueKeys.count(key)) {
        if (!inline_value) {
          if (i + 1 >= argc) throw UsageError(fmt::format("option --{} needs a value", key));
          value = argv[++i];
        }
        if (a.values.count(key)) throw UsageError(fmt::format("option --{} given twice", key));
        a.values[key] = value;
      } else {
        throw UsageError(fmt::format("unknown option '{}' (see --help)", arg));
      }
    } else if (arg.size() > 1 && arg[0] == '-' && !(arg[1] >= '0' && arg[1] <= '9')) {
      throw UsageError(fmt::format("unknown option '{}' (see --help)", arg));
    } else {
      if (!a.name.empty()) throw UsageError(fmt::format("one op or module name expected, got '{}' and '{}'", a.name, arg));
      a.name = arg;
    }
  }
  return a;
}

void print_help() {
  fmt::print(
      "usage: gradcheck NAME [options]       gradcheck one op or module in float64\n"
      "       gradcheck --list               every op and module it knows\n"
      "\n"
      "Compares backward() with central finite differences of L = sum(f(inputs) * r), r a fixed\n"
      "random projection, one input (or parameter) at a time, and prints per input: elements\n"
      "checked, max abs and max rel error, the worst element's index and its analytic and numeric\n"
      "derivative, PASS/FAIL. Exit status 0: all pass, 1: a check failed, 2: bad usage.\n"
      "\n"
      "common options:\n"
      "  --device D        cpu (default), cuda or cuda:N\n"
      "  --fd-eps X        finite-difference step (default 1e-6, or the case list's)\n"
      "  --eps X           the op's or module's own epsilon where it has one (coor_descent,\n"
      "                    layer_norm, rms_norm, the coor_descent router); otherwise the same\n"
      "                    as --fd-eps\n"
      "  --atol X --rtol X tolerances (default 1e-7 and 1e-5, or the case list's)\n"
      "  --max-elements N  per input; beyond that a strided sample is checked (default 4096)\n"
      "  --seed N          seed of the random inputs and module parameters (default 0)\n"
      "\n"
      "ops (see --list): inputs are random; kinked ops (relu, abs, clamp*, maximum, minimum,\n"
      "max, amax, topk, sort) get well-separated values away from ties and kinks; log, sqrt,\n"
      "rsqrt, pow get positive inputs, div a positive divisor.\n"
      "  --shape S         shape of the (first) input, e.g. 3,5. Without it, ops of the test case\n"
      "                    list run every case-list variant of that op; other ops use a default.\n"
      "  --shape2 S        shape of the second input (binary ops: default = --shape, so pass a\n"
      "                    broadcastable one to test broadcasting; matmul/bmm: default [..., K, 4])\n"
      "  --layout L        contiguous (default), transposed or sliced: memory layout of the inputs\n"
      "  --dim D           the axis (softmax, log_softmax, logsumexp, cumsum, max, topk, sort, flip,\n"
      "                    cat, stack; default -1); --dims 0,1 for sum/mean/amax (default all, or\n"
      "                    the last dim for amax); --keepdim\n"
      "  --p X (pow, default 2.5)  --lo X --hi X (clamp, default -0.5, 0.5)  --c X (scalar ops)\n"
      "  --out N           linear: output features (default 4); --no-bias\n"
      "  --k K             topk (default 2); coor_descent target count (default 4);\n"
      "                    --k-tensor: coor_descent with k as a per-row tensor, also checked\n"
      "  --n-iters N       coor_descent (default 50), sinkhorn (default 8)\n"
      "  --eps-init X --eps-decay X  coor_descent's eps-scaling schedule; --mask: random mask\n"
      "  --classes N       cross_entropy classes (default: last dim of --shape)\n"
      "\n"
      "modules: built with small sizes, parameters and inputs in float64, every parameter and\n"
      "every floating input checked.\n"
      "  --dim N (8) --seq N (12) --batch N (2) --heads N (2) --dim-head N (4)\n"
      "  --window N        LocalMHA window (default 4); routed attention light_window_size\n"
      "                    (default 8; the light attention uses half of it)\n"
      "  --num-heavy N (6) --num-heavy-kv N (6) --num-routed-kv N (1) --num-routing-tokens N (1)\n"
      "  --router T        coor_descent (default), cum_softmax or sinkhorn; with --n-iters,\n"
      "                    --eps, --temperature, --fetch-k-ratio\n"
      "  --mult X (FeedForward, 4)  --light-ff-mult X (0.5)  --heavy-ff-mult X (4)\n"
      "  --context-seq N   ConditionalRoutedCrossAttention context length (default --seq)\n"
      "  --mask            pass a random key-padding mask (first token always kept)\n"
      "  --causal          LocalMHA; --no-null-q; --multiply-keys-by-score;\n"
      "                    --multiply-queries-by-score\n"
      "  Routers are built with straight_through OFF: with it on, the router's forward adds\n"
      "  (1 - s).detach() to the scores s, so the output is the constant 1 where it is selected\n"
      "  and finite differences are zero by design while backward still passes the gradient of\n"
      "  s; checking it would only report that difference.\n"
      "  The selected indices are discrete: the check assumes no near-tie flips under +-eps.\n");
}

// ---------------------------------------------------------------------------------------------
// One check: named inputs (leaves) and the function of them.

struct Problem {
  std::string title;
  std::vector<std::string> names;  // one per input; "" for constants (masks, indices)
  TensorList inputs;
  GradcheckFn fn;
  GradcheckOptions grad{};
  bool differentiable = true;
  std::shared_ptr<nn::Module> module;  // keeps a module alive while fn refers to it
};

struct Row {
  std::string name, shape;
  GradcheckResult r;
};

// Runs gradcheck once per named input, only that input requiring grad.
std::vector<Row> check_problem(Problem& p) {
  std::vector<Row> rows;
  std::vector<bool> was(p.inputs.size());
  for (size_t i = 0; i < p.inputs.size(); ++i) was[i] = p.inputs[i].requires_grad();
  for (size_t i = 0; i < p.inputs.size(); ++i) {
    if (!was[i] || p.names[i].empty()) continue;
    for (size_t j = 0; j < p.inputs.size(); ++j)
      if (was[j]) p.inputs[j].requires_grad_(j == i);
    Row row{p.names[i], shape_str(p.inputs[i].shape()), gradcheck(p.fn, p.inputs, p.grad)};
    rows.push_back(row);
  }
  for (size_t j = 0; j < p.inputs.size(); ++j)
    if (was[j]) p.inputs[j].requires_grad_(true);
  return rows;
}

// ---------------------------------------------------------------------------------------------
// Ops with user-chosen shapes.

struct OpInfo {
  std::string name, what;
};

const std::vector<OpInfo>& shaped_ops() {
  static const std::vector<OpInfo> ops = {
      {"neg", "unary"}, {"exp", "unary"}, {"log", "unary, positive input"}, {"relu", "unary, kinked"},
      {"gelu", "unary"}, {"sqrt", "unary, positive input"}, {"rsqrt", "unary, positive input"},
      {"abs", "unary, kinked"}, {"sigmoid", "unary"}, {"tanh", "unary"}, {"pow", "unary, --p, positive input"},
      {"clamp", "unary, --lo --hi, kinked"}, {"clamp_min", "unary, --lo, kinked"},
      {"clamp_max", "unary, --hi, kinked"}, {"add_scalar", "unary, --c"}, {"mul_scalar", "unary, --c"},
      {"add", "binary, broadcasting (--shape2)"}, {"sub", "binary, broadcasting"}, {"mul", "binary, broadcasting"},
      {"div", "binary, broadcasting, positive divisor"}, {"maximum", "binary, broadcasting, kinked"},
      {"minimum", "binary, broadcasting, kinked"}, {"where", "random bool condition, two inputs"},
      {"masked_fill", "random bool mask, --c"}, {"sum", "reduction, --dims --keepdim"},
      {"mean", "reduction, --dims --keepdim"}, {"amax", "reduction, --dims --keepdim, kinked"},
      {"max", "values along --dim, kinked"}, {"logsumexp", "along --dim"}, {"softmax", "along --dim"},
      {"log_softmax", "along --dim"}, {"cumsum", "along --dim"}, {"layer_norm", "last dim, weight, bias, --eps"},
      {"rms_norm", "last dim, gamma, --eps"}, {"matmul", "a @ b (--shape2)"}, {"bmm", "[B,N,K] @ [B,K,M]"},
      {"linear", "x W^T + b, --out --no-bias"}, {"topk", "values, --k --dim --smallest, kinked"},
      {"sort", "values, --dim --descending, kinked"}, {"flip", "along --dim"}, {"cat", "two inputs along --dim"},
      {"stack", "two inputs along --dim"}, {"cross_entropy", "logits [N,C], random targets"},
      {"coor_descent", "soft top-k, --k --n-iters --eps --eps-init --eps-decay --mask --k-tensor"},
      {"sinkhorn", "log-domain Sinkhorn, last two dims, --n-iters"}};
  return ops;
}

bool listed(const std::vector<OpInfo>& list, const std::string& name) {
  return std::any_of(list.begin(), list.end(), [&](const OpInfo& o) { return o.name == name; });
}

bool is_shaped_op(const std::string& name) { return listed(shaped_ops(), name); }

Shape default_shape(const std::string& op) {
  if (op == "coor_descent") return {2, 16};
  if (op == "sinkhorn") return {2, 4, 4};
  if (op == "bmm") return {2, 3, 4};
  if (op == "matmul" || op == "linear") return {3, 5};
  return {3, 5};
}

cases::Layout parse_layout(const std::string& s) {
  if (s == "contiguous") return cases::Layout::Contiguous;
  if (s == "transposed") return cases::Layout::Transposed;
  if (s == "sliced") return cases::Layout::Sliced;
  throw UsageError(fmt::format("option --layout expected contiguous, transposed or sliced, got '{}'", s));
}

// A random bool tensor of `shape` on dev, about 80% True; the first element of every last-dim
// row True (so no row is fully masked).
Tensor random_mask(const Shape& shape, Device dev, uint64_t seed) {
  Generator gen(seed);
  Tensor keep = gt(rand(shape, DType::Float64, kCPU, &gen), 0.2);
  if (!shape.empty() && shape.back() > 0) {
    Tensor first = eq(arange(shape.back()), 0.0);  // [n]
    keep = logical_or(keep, first);
  }
  return keep.to(dev);
}

Problem build_shaped_op(const std::string& op, const Args& a, Device dev) {
  const uint64_t seed = uint64_t(a.integer("seed", 0));
  const Shape shape = a.has("shape") ? parse_shape("shape", a.str("shape", "")) : default_shape(op);
  const cases::Layout layout = parse_layout(a.str("layout", "contiguous"));
  if (layout == cases::Layout::Transposed && shape.size() < 2)
    throw UsageError("option --layout transposed needs a --shape with at least 2 dims");
  const DType f64 = DType::Float64;

  // Inputs of the requested layout (transposed falls back to contiguous below 2 dims).
  auto lay = [&](const Shape& s) {
    return layout == cases::Layout::Transposed && s.size() < 2 ? cases::Layout::Contiguous : layout;
  };
  auto normal = [&](const Shape& s, uint64_t sd, double scale = 1.0, double shift = 0.0) {
    return cases::leaf(s, f64, dev, sd, lay(s), scale, shift);
  };
  // Positive: N(1.5, 0.25^2) never comes near 0 in practice (6 sigma).
  auto positive = [&](const Shape& s, uint64_t sd) { return normal(s, sd, 0.25, 1.5); };
  auto distinct = [&](const Shape& s, uint64_t sd, double shift = 0.0) {
    return cases::distinct_leaf(s, f64, dev, sd, 0.1, shift);
  };
  const int64_t dim = a.integer("dim", -1);
  const bool keepdim = a.flag("keepdim");
  auto dims_or_all = [&](const Tensor& x, bool last_default) -> std::optional<Shape> {
    if (a.has("dims")) return parse_shape("dims", a.str("dims", ""));
    if (last_default) return Shape{x.dim() - 1};
    return std::nullopt;
  };

  Problem p;
  p.title = op + " " + shape_str(shape);
  const Shape shape2 = a.has("shape2") ? parse_shape("shape2", a.str("shape2", "")) : shape;

  using U = std::function<Tensor(const Tensor&)>;
  auto unary = [&](Tensor x, U f) {
    p.names = {"x"};
    p.inputs = {x};
    p.fn = [f](const TensorList& in) { return f(in[0]); };
  };
  using B = std::function<Tensor(const Tensor&, const Tensor&)>;
  auto binary = [&](Tensor x, Tensor y, B f, const std::string& n0 = "a", const std::string& n1 = "b") {
    p.names = {n0, n1};
    p.inputs = {x, y};
    p.fn = [f](const TensorList& in) { return f(in[0], in[1]); };
    p.title = op + " " + shape_str(x.shape()) + " " + shape_str(y.shape());
  };

  if (op == "neg") unary(normal(shape, seed), [](const Tensor& x) { return neg(x); });
  else if (op == "exp") unary(normal(shape, seed), [](const Tensor& x) { return exp(x); });
  else if (op == "log") unary(positive(shape, seed), [](const Tensor& x) { return log(x); });
  else if (op == "relu") unary(distinct(shape, seed), [](const Tensor& x) { return relu(x); });
  else if (op == "gelu") unary(normal(shape, seed), [](const Tensor& x) { return gelu(x); });
  else if (op == "sqrt") unary(positive(shape, seed), [](const Tensor& x) { return sqrt(x); });
  else if (op == "rsqrt") unary(positive(shape, seed), [](const Tensor& x) { return rsqrt(x); });
  else if (op == "abs") unary(distinct(shape, seed), [](const Tensor& x) { return abs(x); });
  else if (op == "sigmoid") unary(normal(shape, seed), [](const Tensor& x) { return sigmoid(x); });
  else if (op == "tanh") unary(normal(shape, seed), [](const Tensor& x) { return tanh(x); });
  else if (op == "pow") {
    const double e = a.real("p", 2.5);
    unary(positive(shape, seed), [e](const Tensor& x) { return pow(x, e); });
  } else if (op == "clamp") {
    const double lo = a.real("lo", -0.5), hi = a.real("hi", 0.5);
    unary(distinct(shape, seed, 0.025), [lo, hi](const Tensor& x) { return clamp(x, lo, hi); });
  } else if (op == "clamp_min") {
    const double lo = a.real("lo", 0.0);
    unary(distinct(shape, seed, 0.025), [lo](const Tensor& x) { return clamp_min(x, lo); });
  } else if (op == "clamp_max") {
    const double hi = a.real("hi", 0.0);
    unary(distinct(shape, seed, 0.025), [hi](const Tensor& x) { return clamp_max(x, hi); });
  } else if (op == "add_scalar") {
    const double c = a.real("c", 0.5);
    unary(normal(shape, seed), [c](const Tensor& x) { return add_scalar(x, c); });
  } else if (op == "mul_scalar") {
    const double c = a.real("c", -1.5);
    unary(normal(shape, seed), [c](const Tensor& x) { return mul_scalar(x, c); });
  } else if (op == "add") binary(normal(shape, seed), normal(shape2, seed + 1), [](auto& x, auto& y) { return add(x, y); });
  else if (op == "sub") binary(normal(shape, seed), normal(shape2, seed + 1), [](auto& x, auto& y) { return sub(x, y); });
  else if (op == "mul") binary(normal(shape, seed), normal(shape2, seed + 1), [](auto& x, auto& y) { return mul(x, y); });
  else if (op == "div") binary(normal(shape, seed), positive(shape2, seed + 1), [](auto& x, auto& y) { return div(x, y); });
  else if (op == "maximum")  // the two grids are offset by gap/4: no ties between a and b
    binary(distinct(shape, seed), distinct(shape2, seed + 1, 0.025), [](auto& x, auto& y) { return maximum(x, y); });
  else if (op == "minimum")
    binary(distinct(shape, seed), distinct(shape2, seed + 1, 0.025), [](auto& x, auto& y) { return minimum(x, y); });
  else if (op == "where") {
    Tensor cond = random_mask(shape, dev, seed + 2);
    binary(normal(shape, seed), normal(shape2, seed + 1),
           [cond](auto& x, auto& y) { return where(cond, x, y); });
  } else if (op == "masked_fill") {
    Tensor mask = random_mask(shape2, dev, seed + 2);
    const double c = a.real("c", 0.5);
    unary(normal(shape, seed), [mask, c](const Tensor& x) { return masked_fill(x, mask, c); });
  } else if (op == "sum" || op == "mean" || op == "amax") {
    Tensor x = op == "amax" ? distinct(shape, seed) : normal(shape, seed);
    if (shape.empty() && op == "amax") throw UsageError("amax needs a --shape with at least 1 dim");
    const std::optional<Shape> dims = dims_or_all(x, op == "amax");
    if (op == "sum")
      unary(x, [dims, keepdim](const Tensor& t) { return dims ? sum(t, *dims, keepdim) : sum(t); });
    else if (op == "mean")
      unary(x, [dims, keepdim](const Tensor& t) { return dims ? mean(t, *dims, keepdim) : mean(t); });
    else
      unary(x, [dims, keepdim](const Tensor& t) { return amax(t, *dims, keepdim); });
  } else if (op == "max") {
    unary(distinct(shape, seed), [dim, keepdim](const Tensor& t) { return max(t, dim, keepdim).values; });
  } else if (op == "logsumexp") {
    unary(normal(shape, seed), [dim, keepdim](const Tensor& t) { return logsumexp(t, dim, keepdim); });
  } else if (op == "softmax") {
    unary(normal(shape, seed), [dim](const Tensor& t) { return softmax(t, dim); });
  } else if (op == "log_softmax") {
    unary(normal(shape, seed), [dim](const Tensor& t) { return log_softmax(t, dim); });
  } else if (op == "cumsum") {
    unary(normal(shape, seed), [dim](const Tensor& t) { return cumsum(t, dim); });
  } else if (op == "flip") {
    unary(normal(shape, seed), [dim](const Tensor& t) { return flip(t, dim); });
  } else if (op == "topk") {
    const int64_t k = a.integer("k", 2);
    const bool largest = !a.flag("smallest");
    unary(distinct(shape, seed), [k, dim, largest](const Tensor& t) { return topk(t, k, dim, largest).values; });
  } else if (op == "sort") {
    const bool desc = a.flag("descending");
    unary(distinct(shape, seed), [dim, desc](const Tensor& t) { return sort(t, dim, desc).values; });
  } else if (op == "cat" || op == "stack") {
    const bool is_cat = op == "cat";
    binary(normal(shape, seed), normal(shape2, seed + 1),
           [dim, is_cat](auto& x, auto& y) { return is_cat ? cat({x, y}, dim) : stack({x, y}, dim); });
  } else if (op == "layer_norm" || op == "rms_norm") {
    if (shape.empty()) throw UsageError(op + " needs a --shape with at least 1 dim");
    const Shape last{shape.back()};
    if (op == "layer_norm") {
      const double eps = a.real("eps", 1e-5);
      p.names = {"x", "weight", "bias"};
      p.inputs = {normal(shape, seed), normal(last, seed + 1, 0.5, 1.0), normal(last, seed + 2)};
      p.fn = [eps](const TensorList& in) { return layer_norm(in[0], in[1], in[2], eps); };
    } else {
      const double eps = a.real("eps", 1e-12);
      p.names = {"x", "gamma"};
      p.inputs = {normal(shape, seed), normal(last, seed + 1, 0.5, 1.0)};
      p.fn = [eps](const TensorList& in) { return rms_norm(in[0], in[1], eps); };
    }
  } else if (op == "matmul" || op == "bmm") {
    Shape sb = shape2;
    if (!a.has("shape2")) {
      if (shape.empty()) throw UsageError(op + " needs a --shape with at least 1 dim");
      sb = shape.size() >= 3 ? Shape{shape[0], shape.back(), 4} : Shape{shape.back(), 4};
    }
    if (op == "matmul")
      binary(normal(shape, seed), normal(sb, seed + 1), [](auto& x, auto& y) { return matmul(x, y); });
    else
      binary(normal(shape, seed), normal(sb, seed + 1), [](auto& x, auto& y) { return bmm(x, y); });
  } else if (op == "linear") {
    if (shape.empty()) throw UsageError("linear needs a --shape with at least 1 dim");
    const int64_t out = a.size("out", 4);
    const Shape ws{out, shape.back()};
    if (a.flag("no-bias")) {
      binary(normal(shape, seed), normal(ws, seed + 1), [](auto& x, auto& w) { return linear(x, w); }, "x", "weight");
    } else {
      p.names = {"x", "weight", "bias"};
      p.inputs = {normal(shape, seed), normal(ws, seed + 1), normal({out}, seed + 2)};
      p.fn = [](const TensorList& in) { return linear(in[0], in[1], in[2]); };
    }
  } else if (op == "cross_entropy") {
    if (shape.size() != 2) throw UsageError("cross_entropy needs --shape N,C");
    const int64_t classes = shape[1];
    Generator gen(seed + 3);
    Tensor targets = randint(0, std::max<int64_t>(classes, 1), {shape[0]}, DType::Int64, kCPU, &gen).to(dev);
    unary(normal(shape, seed), [targets](const Tensor& t) { return cross_entropy(t, targets); });
    p.names = {"logits"};
  } else if (op == "coor_descent") {
    if (shape.empty()) throw UsageError("coor_descent needs a --shape with at least 1 dim");
    CoorDescentOptions o;
    o.n_iters = a.integer("n-iters", 50);
    o.eps = a.real("eps", 0.1);
    o.eps_init = a.opt_real("eps-init");
    o.eps_decay = a.real("eps-decay", 1.0);
    const double k = a.real("k", 4.0);
    Tensor mask = a.flag("mask") ? random_mask(shape, dev, seed + 2) : Tensor();
    if (a.flag("k-tensor")) {
      // One k per row, around the requested k.
      Shape ks(shape.begin(), shape.end() - 1);
      binary(normal(shape, seed), normal(ks, seed + 1, 0.25, k),
             [o, mask](auto& s, auto& kk) { return coor_descent(s, kk, o, mask); }, "s", "k");
    } else {
      unary(normal(shape, seed), [o, k, mask](const Tensor& s) { return coor_descent(s, k, o, mask); });
      p.names = {"s"};
    }
    p.title += fmt::format(" k={} n_iters={} eps={}{}", k, o.n_iters, o.eps, mask.defined() ? " masked" : "");
  } else if (op == "sinkhorn") {
    if (shape.size() < 2) throw UsageError("sinkhorn needs a --shape with at least 2 dims");
    const int64_t n_iters = a.integer("n-iters", 8);
    unary(normal(shape, seed), [n_iters](const Tensor& r) { return sinkhorn(r, n_iters); });
    p.names = {"r"};
  } else {
    throw UsageError(fmt::format("unknown op '{}' (see --list)", op));
  }
  return p;
}

// ---------------------------------------------------------------------------------------------
// Modules.

const std::vector<OpInfo>& modules() {
  static const std::vector<OpInfo> mods = {
      {"RMSNorm", "nn/layers.h; x [b, n, dim]"},
      {"FeedForward", "nn/layers.h; --mult"},
      {"LocalMHA", "nn/local_attention.h; --heads --dim-head --window --causal --mask"},
      {"Attention", "nn/attention.h (heavy attention, self); --heads --dim-head --mask"},
      {"CoordinateDescentRouter", "scores of --num-heavy tokens; --n-iters --eps --fetch-k-ratio"},
      {"DifferentiableTopKRouter", "scores of --num-heavy tokens; --temperature"},
      {"SinkhornRouter", "scores of --num-heavy tokens; --n-iters --temperature"},
      {"ConditionalRoutedFeedForward", "--num-heavy --router --light-ff-mult --heavy-ff-mult --mask"},
      {"ConditionalRoutedAttention", "--num-heavy --num-heavy-kv --num-routed-kv --window --router --mask"},
      {"ConditionalRoutedAutoregressiveAttention", "--num-heavy --num-heavy-kv --window --router"},
      {"ConditionalRoutedCrossAttention", "x and context; --num-heavy --num-heavy-kv --context-seq --mask"},
      {"ConditionalRoutedTransformerBlock", "attention + feed-forward; --num-heavy --num-heavy-kv --mask"}};
  return mods;
}

bool is_module(const std::string& name) { return listed(modules(), name); }

nn::RouterKwargs router_kwargs(const Args& a) {
  nn::RouterKwargs kw;
  kw.n_iters = a.opt_integer("n-iters");
  kw.eps = a.opt_real("eps");
  kw.temperature = a.opt_real("temperature");
  kw.fetch_k_ratio = a.opt_real("fetch-k-ratio");
  return kw;
}

Problem build_module(const std::string& name, const Args& a, Device dev) {
  const uint64_t seed = uint64_t(a.integer("seed", 0));
  const int64_t dim = a.size("dim", 8), seq = a.size("seq", 12), batch = a.size("batch", 2);
  const DType f64 = DType::Float64;
  Generator gen(seed);
  Generator data_gen(seed + 1000);
  auto input = [&](int64_t n) { return randn({batch, n, dim}, f64, dev, &data_gen).requires_grad_(); };
  Problem p;
  p.title = fmt::format("{} dim={} batch={} seq={}", name, dim, batch, seq);

  std::shared_ptr<nn::Module> m;
  Tensor x = input(seq);
  Tensor mask;
  TensorList extra_inputs;
  std::vector<std::string> extra_names;
  std::function<Tensor(const TensorList&)> fwd;  // of the first input (x) and extra inputs
  std::vector<std::shared_ptr<nn::Router>> routers;  // whose Gumbel noise must repeat (sinkhorn)

  auto heads = [&] { return a.size("heads", 2); };
  auto dim_head = [&] { return a.size("dim-head", 4); };
  auto num_heavy = [&] { return a.size("num-heavy", std::max<int64_t>(1, seq / 2)); };
  auto num_heavy_kv = [&] { return a.size("num-heavy-kv", std::max<int64_t>(1, seq / 2)); };
  auto want_mask = [&] {
    if (a.flag("mask")) mask = random_mask({batch, seq}, dev, seed + 2);
  };

  if (name == "RMSNorm") {
    auto mod = std::make_shared<nn::RMSNorm>(dim);
    m = mod;
    fwd = [mod](const TensorList& in) { return mod->forward(in[0]); };
  } else if (name == "FeedForward") {
    nn::FeedForwardOptions o;
    o.mult = a.real("mult", 4.0);
    auto mod = std::make_shared<nn::FeedForward>(dim, o, &gen);
    m = mod;
    fwd = [mod](const TensorList& in) { return mod->forward(in[0]); };
  } else if (name == "LocalMHA") {
    nn::LocalMHAOptions o;
    o.dim = dim;
    o.window_size = a.size("window", 4);
    o.heads = heads();
    o.dim_head = dim_head();
    o.causal = a.flag("causal");
    auto mod = std::make_shared<nn::LocalMHA>(o, &gen);
    m = mod;
    want_mask();
    Tensor mk = mask;
    fwd = [mod, mk](const TensorList& in) { return mod->forward(in[0], mk); };
  } else if (name == "Attention") {
    nn::AttentionOptions o;
    o.dim = dim;
    o.heads = heads();
    o.dim_head = dim_head();
    o.multiply_keys_by_score = a.flag("multiply-keys-by-score");
    auto mod = std::make_shared<nn::Attention>(o, &gen);
    m = mod;
    want_mask();
    Tensor mk = mask;
    fwd = [mod, mk](const TensorList& in) { return mod->forward(in[0], Tensor(), mk); };
  } else if (name == "CoordinateDescentRouter" || name == "DifferentiableTopKRouter" || name == "SinkhornRouter") {
    std::shared_ptr<nn::Router> r;
    const int64_t routes = a.size("num-routing-tokens", 1);
    if (name == "CoordinateDescentRouter") {
      nn::CoordinateDescentRouterOptions o;
      o.straight_through = false;
      o.num_routing_tokens = routes;
      o.n_iters = a.integer("n-iters", o.n_iters);
      o.eps = a.real("eps", o.eps);
      o.fetch_k_ratio = a.real("fetch-k-ratio", o.fetch_k_ratio);
      r = std::make_shared<nn::CoordinateDescentRouter>(dim, o, &gen);
    } else if (name == "DifferentiableTopKRouter") {
      nn::DifferentiableTopKRouterOptions o;
      o.straight_through = false;
      o.num_routing_tokens = routes;
      o.temperature = a.real("temperature", o.temperature);
      r = std::make_shared<nn::DifferentiableTopKRouter>(dim, o, &gen);
    } else {
      nn::SinkhornRouterOptions o;
      o.straight_through = false;
      o.num_routing_tokens = routes;
      o.n_iters = a.integer("n-iters", o.n_iters);
      o.temperature = a.real("temperature", o.temperature);
      r = std::make_shared<nn::SinkhornRouter>(dim, o, &gen);
    }
    m = r;
    want_mask();
    Tensor mk = mask;
    const int64_t k = num_heavy();
    p.title += fmt::format(" num_tokens={} straight_through=off", k);
    routers.push_back(r);
    fwd = [r, mk, k](const TensorList& in) { return r->forward(in[0], k, mk).scores; };
  } else if (name == "ConditionalRoutedFeedForward") {
    nn::ConditionalRoutedFeedForwardOptions o;
    o.num_heavy_tokens = num_heavy();
    o.light_ff_mult = a.real("light-ff-mult", o.light_ff_mult);
    o.heavy_ff_mult = a.real("heavy-ff-mult", o.heavy_ff_mult);
    o.router_straight_through = false;
    o.router_type = a.str("router", o.router_type);
    o.router_kwargs = router_kwargs(a);
    auto mod = std::make_shared<nn::ConditionalRoutedFeedForward>(dim, o, &gen);
    m = mod;
    routers = {mod->router};
    want_mask();
    Tensor mk = mask;
    p.title += fmt::format(" num_heavy_tokens={} router={}", o.num_heavy_tokens, o.router_type);
    fwd = [mod, mk](const TensorList& in) { return mod->forward(in[0], mk); };
  } else if (name == "ConditionalRoutedAttention" || name == "ConditionalRoutedAutoregressiveAttention") {
    const bool ar = name == "ConditionalRoutedAutoregressiveAttention";
    auto fill = [&](auto& o) {
      o.num_heavy_tokens_q = num_heavy();
      o.num_heavy_tokens_kv = num_heavy_kv();
      o.num_routed_kv = a.size("num-routed-kv", 1);
      o.light_heads = heads();
      o.light_dim_head = dim_head();
      o.heavy_heads = heads();
      o.heavy_dim_head = dim_head();
      o.light_window_size = a.size("window", 8);
      o.router_straight_through = false;
      o.router_type = a.str("router", o.router_type);
      o.router_kwargs = router_kwargs(a);
      o.multiply_keys_by_score = a.flag("multiply-keys-by-score");
      o.multiply_queries_by_score = a.flag("multiply-queries-by-score");
      o.use_null_q_tokens = !a.flag("no-null-q");
      p.title += fmt::format(" heavy_q={} heavy_kv={} window={} router={}", o.num_heavy_tokens_q,
                             o.num_heavy_tokens_kv, o.light_window_size, o.router_type);
    };
    if (!ar) {
      nn::ConditionalRoutedAttentionOptions o;
      fill(o);
      auto mod = std::make_shared<nn::ConditionalRoutedAttention>(dim, o, &gen);
      m = mod;
      routers = {mod->q_router, mod->kv_router};
      want_mask();
      Tensor mk = mask;
      fwd = [mod, mk](const TensorList& in) { return mod->forward(in[0], mk); };
    } else {
      nn::ConditionalRoutedAutoregressiveAttentionOptions o;
      fill(o);
      auto mod = std::make_shared<nn::ConditionalRoutedAutoregressiveAttention>(dim, o, &gen);
      m = mod;
      routers = {mod->q_router, mod->kv_router};
      fwd = [mod](const TensorList& in) { return mod->forward(in[0]); };
    }
  } else if (name == "ConditionalRoutedCrossAttention") {
    nn::ConditionalRoutedCrossAttentionOptions o;
    o.num_tokens_q = num_heavy();
    o.num_tokens_kv = num_heavy_kv();
    o.heads = heads();
    o.dim_head = dim_head();
    o.kv_routing_tokens = a.size("num-routed-kv", 1);
    o.router_straight_through = false;
    o.router_type = a.str("router", o.router_type);
    o.router_kwargs = router_kwargs(a);
    o.multiply_keys_by_score = a.flag("multiply-keys-by-score");
    o.use_null_q_tokens = !a.flag("no-null-q");
    auto mod = std::make_shared<nn::ConditionalRoutedCrossAttention>(dim, o, &gen);
    m = mod;
    routers = {mod->q_router, mod->kv_router};
    const int64_t cseq = a.size("context-seq", seq);
    extra_inputs.push_back(input(cseq));
    extra_names.push_back("context");
    Tensor mk, cmk;
    if (a.flag("mask")) {
      mk = random_mask({batch, seq}, dev, seed + 2);
      cmk = random_mask({batch, cseq}, dev, seed + 3);
    }
    p.title += fmt::format(" context={} tokens_q={} tokens_kv={} router={}", cseq, o.num_tokens_q, o.num_tokens_kv,
                           o.router_type);
    fwd = [mod, mk, cmk](const TensorList& in) { return mod->forward(in[0], in[1], mk, cmk); };
  } else if (name == "ConditionalRoutedTransformerBlock") {
    nn::ConditionalRoutedTransformerBlockOptions o;
    o.num_heavy_attn_tokens_q = num_heavy();
    o.num_heavy_attn_tokens_kv = num_heavy_kv();
    o.num_heavy_ff_tokens = num_heavy();
    o.num_routed_kv = a.size("num-routed-kv", 1);
    o.light_heads = heads();
    o.light_dim_head = dim_head();
    o.heavy_heads = heads();
    o.heavy_dim_head = dim_head();
    o.light_window_size = a.size("window", 8);
    o.light_ff_mult = a.real("light-ff-mult", o.light_ff_mult);
    o.heavy_ff_mult = a.real("heavy-ff-mult", o.heavy_ff_mult);
    o.router_straight_through = false;
    o.router_type = a.str("router", o.router_type);
    o.router_kwargs = router_kwargs(a);
    o.multiply_keys_by_score = a.flag("multiply-keys-by-score");
    o.multiply_queries_by_score = a.flag("multiply-queries-by-score");
    o.use_null_q_tokens = !a.flag("no-null-q");
    auto mod = std::make_shared<nn::ConditionalRoutedTransformerBlock>(dim, o, &gen);
    m = mod;
    routers = {mod->conditional_ff->router, mod->conditional_attn->q_router, mod->conditional_attn->kv_router};
    want_mask();
    Tensor mk = mask;
    p.title += fmt::format(" heavy_q={} heavy_kv={} heavy_ff={} router={}", o.num_heavy_attn_tokens_q,
                           o.num_heavy_attn_tokens_kv, o.num_heavy_ff_tokens, o.router_type);
    fwd = [mod, mk](const TensorList& in) { return mod->forward(in[0], mk); };
  } else {
    throw UsageError(fmt::format("unknown module '{}' (see --list)", name));
  }
  if (mask.defined()) p.title += " masked";

  m->to(f64);
  m->to(dev);
  p.module = m;
  p.names = {"x"};
  p.inputs = {x};
  for (size_t i = 0; i < extra_inputs.size(); ++i) {
    p.names.push_back(extra_names[i]);
    p.inputs.push_back(extra_inputs[i]);
  }
  const size_t n_data = p.inputs.size();
  // Sinkhorn routers draw Gumbel noise: every evaluation gets the same noise (a fresh generator
  // of a fixed seed per call), else finite differences would measure the noise.
  std::vector<nn::SinkhornRouter*> noisy;
  for (const auto& r : routers)
    if (auto* s = dynamic_cast<nn::SinkhornRouter*>(r.get())) noisy.push_back(s);
  if (!noisy.empty()) {
    fwd = [fwd, noisy, seed](const TensorList& in) {
      std::vector<std::unique_ptr<Generator>> gens;
      for (size_t i = 0; i < noisy.size(); ++i) {
        gens.push_back(std::make_unique<Generator>(seed + 7 + i));
        noisy[i]->noise_generator = gens.back().get();
      }
      Tensor out;
      try {
        out = fwd(in);
      } catch (...) {
        for (auto* s : noisy) s->noise_generator = nullptr;
        throw;
      }
      for (auto* s : noisy) s->noise_generator = nullptr;
      return out;
    };
  }
  // Parameters are checked as inputs: gradcheck perturbs them in place, the module reads them.
  for (auto& [pname, t] : m->named_parameters()) {
    if (!t.is_floating_point()) continue;
    Tensor param = t;
    param.requires_grad_(true);
    p.names.push_back(pname);
    p.inputs.push_back(param);
  }
  p.fn = [fwd, n_data](const TensorList& in) { return fwd(TensorList(in.begin(), in.begin() + long(n_data))); };
  return p;
}

// ---------------------------------------------------------------------------------------------
// Output.

void print_table_header() {
  fmt::print("  {:<34} {:>12} {:>7} {:>10} {:>10} {:>14} {:>14} {:>14}  {}\n", "input / parameter", "shape",
             "checked", "max abs", "max rel", "worst index", "analytic", "numeric", "result");
}

void print_row(const Row& row, const Shape& shape) {
  const auto& r = row.r;
  std::string name = row.name.size() > 34 ? row.name.substr(0, 31) + "..." : row.name;
  fmt::print("  {:<34} {:>12} {:>7} {:>10.3e} {:>10.3e} {:>14} {:>14.6e} {:>14.6e}  {}\n", name, row.shape,
             r.checked, r.max_abs_error, r.max_rel_error, unravel(r.index, shape), r.analytic, r.numeric,
             r.ok ? "PASS" : "FAIL");
}

// Runs and prints one problem; returns whether every input passed.
bool run_problem(Problem& p) {
  fmt::print("{}\n", p.title);
  fmt::print("  fd eps={:g} atol={:g} rtol={:g} max_elements={}\n", p.grad.eps, p.grad.atol, p.grad.rtol,
             p.grad.max_elements);
  if (!p.differentiable) {
    Tensor out = p.fn(p.inputs);
    fmt::print("  output not differentiable (indices): forward ran, shape {}; nothing to check\n",
               shape_str(out.shape()));
    return true;
  }
  const std::vector<Row> rows = check_problem(p);
  if (rows.empty()) {
    fmt::print("  no input requires grad: nothing to check\n");
    return true;
  }
  print_table_header();
  bool ok = true;
  for (size_t i = 0, k = 0; i < p.inputs.size() && k < rows.size(); ++i) {
    if (p.names[i] != rows[k].name || !p.inputs[i].requires_grad()) continue;
    print_row(rows[k], p.inputs[i].shape());
    ok = ok && rows[k].r.ok;
    ++k;
  }
  return ok;
}

void print_list() {
  std::vector<std::string> case_ops;
  for (const auto& c : cases::all_cases())
    if (std::find(case_ops.begin(), case_ops.end(), c.op) == case_ops.end()) case_ops.push_back(c.op);
  std::map<std::string, int> variants;
  for (const auto& c : cases::all_cases()) variants[c.op]++;
  fmt::print("ops with user-chosen shapes (--shape; without it: case-list variants if any, else a default):\n");
  for (const auto& o : shaped_ops()) {
    const auto it = variants.find(o.name);
    fmt::print("  {:<16} {}{}\n", o.name, o.what,
               it == variants.end() ? fmt::format("; default shape {}", shape_str(default_shape(o.name)))
                                    : fmt::format("; {} case-list variants", it->second));
  }
  fmt::print("ops from the case list only (their variants; --shape does not apply):\n");
  for (const auto& op : case_ops)
    if (!is_shaped_op(op)) fmt::print("  {:<16} {} variants\n", op, variants[op]);
  fmt::print("modules (float64, small sizes; routers with straight_through off):\n");
  for (const auto& m : modules()) fmt::print("  {:<42} {}\n", m.name, m.what);
}

// Applies --fd-eps / --eps (when the op had no eps of its own) / --atol / --rtol / --max-elements.
void apply_grad_options(const Args& a, GradcheckOptions& g, bool eps_is_fd) {
  if (a.has("fd-eps")) g.eps = a.real("fd-eps", g.eps);
  else if (eps_is_fd && a.values.count("eps")) g.eps = a.real("eps", g.eps);
  g.atol = a.real("atol", g.atol);
  g.rtol = a.real("rtol", g.rtol);
  g.max_elements = a.integer("max-elements", g.max_elements);
  if (!(g.eps > 0)) throw UsageError(fmt::format("the finite-difference step must be > 0, got {}", g.eps));
  if (g.atol < 0 || g.rtol < 0) throw UsageError("--atol and --rtol must be >= 0");
  if (g.max_elements < 1) throw UsageError("--max-elements must be >= 1");
}

// Every option given must have been read by something.
void check_all_used(const Args& a, const std::string& what) {
  for (const auto& [k, v] : a.values)
    if (!a.used.count(k)) throw UsageError(fmt::format("option --{} does not apply to {}", k, what));
  for (const auto& k : a.flags)
    if (!a.used.count(k)) throw UsageError(fmt::format("option --{} does not apply to {}", k, what));
}

int run(int argc, char** argv) {
  const Args a = parse_args(argc, argv);
  if (a.flags.count("help")) {
    print_help();
    return 0;
  }
  if (a.flags.count("list")) {
    if (!a.name.empty() || a.flags.size() > 1 || !a.values.empty()) throw UsageError("--list takes no other arguments");
    print_list();
    return 0;
  }
  if (a.name.empty()) throw UsageError("no op or module name given (see --list and --help)");

  Device dev = kCPU;
  const std::string dev_spec = a.str("device", "cpu");
  try {
    dev = Device(dev_spec);
  } catch (const Error& e) {
    throw UsageError(fmt::format("option --device: {}", e.what()));
  }
  if (dev.is_cuda()) {
    if (!cuda_is_available())
      throw UsageError(fmt::format("--device {}: CUDA is not available (this build has no CUDA backend or the "
                                   "machine has no GPU)",
                                   dev_spec));
    if (dev.index >= cuda_device_count())
      throw UsageError(fmt::format("--device {}: only {} CUDA device(s)", dev_spec, cuda_device_count()));
  }

  std::vector<Problem> problems;
  const std::string& name = a.name;
  bool eps_is_fd = true;
  try {
    if (is_module(name)) {
      problems.push_back(build_module(name, a, dev));
      eps_is_fd = !(a.used.count("eps"));
    } else {
      std::vector<cases::OpCase> variants;
      // Only common options given (no --shape, no op option): the case list's variants.
      bool op_options = !a.flags.empty();
      for (const auto& [k, v] : a.values)
        op_options = op_options || !(k == "device" || k == "fd-eps" || k == "eps" || k == "atol" || k == "rtol" ||
                                     k == "max-elements" || k == "seed");
      if (!op_options) {
        for (auto& c : cases::all_cases())
          if (c.op == name) variants.push_back(c);
      }
      if (!variants.empty() && !is_shaped_op(name)) {
        // fine: case-list-only op
      } else if (variants.empty() && !is_shaped_op(name)) {
        bool in_cases = false;
        for (auto& c : cases::all_cases()) in_cases = in_cases || c.op == name;
        if (in_cases)
          throw UsageError(fmt::format("op '{}' takes its inputs from the case list only: drop --shape and the "
                                       "op options",
                                       name));
        throw UsageError(fmt::format("unknown op or module '{}' (see --list)", name));
      }
      if (!variants.empty()) {
        const uint64_t seed = uint64_t(a.integer("seed", 0));
        for (auto& c : variants) {
          Problem p;
          p.title = c.name();
          p.inputs = c.inputs(DType::Float64, dev, seed);
          for (size_t i = 0; i < p.inputs.size(); ++i)
            p.names.push_back(p.inputs[i].requires_grad() ? "input" + std::to_string(i) : "");
          p.fn = c.fn;
          p.grad = c.grad;
          p.differentiable = c.differentiable;
          problems.push_back(std::move(p));
        }
      } else {
        problems.push_back(build_shaped_op(name, a, dev));
        eps_is_fd = !(a.used.count("eps"));
      }
    }
    for (auto& p : problems) apply_grad_options(a, p.grad, eps_is_fd);
    a.used.insert("eps");  // consumed either way
    check_all_used(a, name);
    // One forward first: incompatible shapes or options are usage errors, not failed checks.
    for (auto& p : problems) {
      Tensor out = p.fn(p.inputs);
      (void)out;
    }
  } catch (const Error& e) {
    throw UsageError(fmt::format("{}: {}", name, e.what()));
  }

  fmt::print("gradcheck {} on {} (float64)\n", name, dev.name());
  bool ok = true;
  for (auto& p : problems) ok = run_problem(p) && ok;
  fmt::print("{}\n", ok ? "PASS" : "FAIL");
  return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const UsageError& e) {
    fmt::print(stderr, "gradcheck: {}\nusage: gradcheck NAME [options] | gradcheck --list | gradcheck --help\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    fmt::print(stderr, "gradcheck: error: {}\n", e.what());
    return 1;
  }
}
