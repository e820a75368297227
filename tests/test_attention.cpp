// LocalMHA and the heavy Attention: golden parity with the PyTorch reference (float64, every
// output and gradient within 1e-9 relative), float64 gradcheck on small sizes (sequence lengths
// that are not a multiple of the window, causal and not, key padding masks, several key/value
// routes), fully masked rows stay finite, the windowed core against dense attention where they
// must agree, and bad inputs / options.
#include <doctest/doctest.h>

#include "tests/parity/parity.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "nn/attention.h"
#include "nn/local_attention.h"
#include "nn/safetensors.h"

using namespace colt5;
using colt5::parity::golden_dir;
using colt5::parity::golden_path;
using namespace colt5::nn;
using doctest::Contains;

namespace {

// ---- fixtures -------------------------------------------------------------------------------

// The fixtures' "config" metadata: one flat JSON object of numbers, booleans, strings and null.
// Values are kept as their JSON text (strings without quotes).
std::map<std::string, std::string> parse_flat_json(const std::string& s) {
  std::map<std::string, std::string> out;
  size_t i = 0;
  auto ws = [&] { while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i; };
  auto str = [&] {
    REQUIRE(s[i] == '"');
    std::string r;
    for (++i; i < s.size() && s[i] != '"'; ++i) r += s[i];
    REQUIRE(i < s.size());
    ++i;
    return r;
  };
  ws();
  REQUIRE(s.at(i) == '{');
  ++i;
  for (;;) {
    ws();
    if (s.at(i) == '}') break;
    const std::string key = str();
    ws();
    REQUIRE(s.at(i) == ':');
    ++i;
    ws();
    std::string value;
    if (s.at(i) == '"') {
      value = str();
    } else {
      while (i < s.size() && s[i] != ',' && s[i] != '}' && !std::isspace(static_cast<unsigned char>(s[i])))
        value += s[i++];
    }
    out[key] = value;
    ws();
    if (s.at(i) == ',') ++i;
  }
  return out;
}

struct Config {
  std::map<std::string, std::string> kv;
  bool has(const std::string& k) const { return kv.count(k) != 0; }
  int64_t integer(const std::string& k) const {
    REQUIRE_MESSAGE(has(k), "config has no '", k, "'");
    return std::stoll(kv.at(k));
  }
  bool boolean(const std::string& k) const {
    REQUIRE_MESSAGE(has(k), "config has no '", k, "'");
    REQUIRE((kv.at(k) == "true" || kv.at(k) == "false"));
    return kv.at(k) == "true";
  }
  std::string text(const std::string& k) const {
    REQUIRE_MESSAGE(has(k), "config has no '", k, "'");
    return kv.at(k);
  }
};

// max |a - ref| / max |ref|
double rel_error(const Tensor& a, const Tensor& ref) {
  REQUIRE(a.defined());
  REQUIRE(a.shape() == ref.shape());
  const std::vector<double> x = a.to(DType::Float64).to_vector<double>();
  const std::vector<double> y = ref.to(DType::Float64).to_vector<double>();
  double diff = 0, scale = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    diff = std::max(diff, std::abs(x[i] - y[i]));
    scale = std::max(scale, std::abs(y[i]));
  }
  return scale > 0 ? diff / scale : diff;
}

bool all_finite(const Tensor& t) {
  for (double v : t.to(DType::Float64).to_vector<double>())
    if (!std::isfinite(v)) return false;
  return true;
}

// Load params, run `forward` on the fixture's inputs (floating inputs become leaves that require
// grad), backpropagate sum(output * upstream_grad), compare output and every grad.* entry.
template <class Forward>
void check_golden(const std::string& name, Module& module, const SafetensorsFile& f, Forward forward) {
  const StateDict& t = f.tensors;
  module.to(DType::Float64);
  module.load_state_dict(select_prefix(t, "param."));
  module.zero_grad();

  std::map<std::string, Tensor> inputs;
  for (const auto& [key, value] : select_prefix(t, "input.")) {
    Tensor leaf = value.clone();
    if (leaf.is_floating_point()) leaf.requires_grad_(true);
    inputs[key] = leaf;
  }
  const Tensor out = forward(inputs);
  const double out_err = rel_error(out, t.at("output"));
  INFO(name, ": output rel error ", out_err);
  CAPTURE(out_err);
  CHECK(out_err <= 1e-9);

  sum(mul(out, t.at("upstream_grad"))).backward();

  // one line per fixture: the relative error of every compared tensor
  std::string summary = str(name, " max rel errors: output ", out_err);

  for (const auto& [key, ref] : select_prefix(t, "grad.input.")) {
    const Tensor g = inputs.at(key).grad();
    REQUIRE_MESSAGE(g.defined(), name, ": no gradient for input ", key);
    const double err = rel_error(g, ref);
    summary += str(", grad.input.", key, " ", err);
    CAPTURE(key);
    CAPTURE(err);
    CHECK(err <= 1e-9);
  }
  const StateDict params = [&] {
    StateDict p;
    for (const auto& [k, v] : module.named_parameters()) p[k] = v;
    return p;
  }();
  size_t checked = 0;
  for (const auto& [key, ref] : select_prefix(t, "grad.param.")) {
    REQUIRE_MESSAGE(params.count(key) == 1, name, ": no parameter ", key);
    const Tensor g = params.at(key).grad();
    REQUIRE_MESSAGE(g.defined(), name, ": no gradient for parameter ", key);
    const double err = rel_error(g, ref);
    summary += str(", grad.param.", key, " ", err);
    CAPTURE(key);
    CAPTURE(err);
    CHECK(err <= 1e-9);
    ++checked;
  }
  // every parameter of the module has a reference gradient
  CHECK(checked == params.size());
  MESSAGE(summary);
}

LocalMHAOptions local_options_from(const Config& c) {
  REQUIRE(c.text("module") == "LocalMHA");
  LocalMHAOptions o;
  o.dim = c.integer("dim");
  o.window_size = c.integer("window_size");
  if (c.has("dim_head")) o.dim_head = c.integer("dim_head");
  if (c.has("heads")) o.heads = c.integer("heads");
  if (c.has("prenorm")) o.prenorm = c.boolean("prenorm");
  if (c.has("causal")) o.causal = c.boolean("causal");
  if (c.has("use_rotary_pos_emb")) o.use_rotary_pos_emb = c.boolean("use_rotary_pos_emb");
  if (c.has("look_backward")) o.look_backward = c.integer("look_backward");
  if (c.has("look_forward")) o.look_forward = c.integer("look_forward");
  if (c.has("exact_windowsize")) o.exact_windowsize = c.boolean("exact_windowsize");
  if (c.has("autopad")) REQUIRE(c.boolean("autopad"));  // LocalMHA always pads
  return o;
}

Tensor randn64(const Shape& s, uint64_t seed) {
  Generator gen(seed);
  return randn(s, DType::Float64, kCPU, &gen);
}

Tensor leaf64(const Shape& s, uint64_t seed) { return randn64(s, seed).requires_grad_(true); }

Tensor bool_tensor(const std::vector<int>& v, const Shape& s) {
  std::vector<bool> b(v.begin(), v.end());
  return from_vector(b, s);
}

// Gradcheck a module's forward with respect to its inputs and every parameter (perturbed in place).
void gradcheck_module(Module& m, const TensorList& inputs, const GradcheckFn& fn) {
  TensorList all = inputs;
  for (const Tensor& p : m.parameters()) all.push_back(p);
  int64_t expected = 0;  // every element of every input and parameter is checked
  for (const Tensor& t : all) {
    REQUIRE(t.requires_grad());
    expected += t.numel();
  }
  const GradcheckResult r = gradcheck(fn, all);
  INFO(r.message);
  CHECK(r.ok);
  CHECK(r.checked == expected);
}

}  // namespace

// =============================================================================================
// Golden parity
// =============================================================================================

TEST_CASE("LocalMHA: golden parity, non-causal (autopad, exact window, key padding mask)") {
  const SafetensorsFile f = read_safetensors(golden_path("local_mha_noncausal"));
  const Config c{parse_flat_json(f.metadata.at("config"))};
  LocalMHA m(local_options_from(c));
  check_golden("local_mha_noncausal", m, f, [&](std::map<std::string, Tensor>& in) {
    return m.forward(in.at("x"), in.count("mask") ? in.at("mask") : Tensor());
  });
}

TEST_CASE("LocalMHA: golden parity, causal (autopad, exact window)") {
  const SafetensorsFile f = read_safetensors(golden_path("local_mha_causal"));
  const Config c{parse_flat_json(f.metadata.at("config"))};
  LocalMHA m(local_options_from(c));
  check_golden("local_mha_causal", m, f, [&](std::map<std::string, Tensor>& in) {
    return m.forward(in.at("x"), in.count("mask") ? in.at("mask") : Tensor());
  });
}

TEST_CASE("Attention: golden parity (2 key/value routes, null kv, scores on q, k and v, mask)") {
  const SafetensorsFile f = read_safetensors(golden_path("heavy_attention"));
  const Config c{parse_flat_json(f.metadata.at("config"))};
  REQUIRE(c.text("module") == "Attention");
  AttentionOptions o;
  o.dim = c.integer("dim");
  if (c.has("dim_head")) o.dim_head = c.integer("dim_head");
  if (c.has("heads")) o.heads = c.integer("heads");
  if (c.has("multiply_keys_by_score")) o.multiply_keys_by_score = c.boolean("multiply_keys_by_score");
  Attention m(o);
  if (c.has("kv_routes")) CHECK(f.tensors.at("input.context").size(1) == c.integer("kv_routes"));
  check_golden("heavy_attention", m, f, [&](std::map<std::string, Tensor>& in) {
    auto get = [&](const char* k) { return in.count(k) ? in.at(k) : Tensor(); };
    return m.forward(in.at("x"), get("context"), get("mask"), get("normalized_scores_kv"), get("normalized_scores_q"));
  });
}

// =============================================================================================
// LocalMHA
// =============================================================================================

TEST_CASE("LocalMHA: parameter names and shapes") {
  LocalMHAOptions o;
  o.dim = 10;
  o.window_size = 4;
  o.dim_head = 3;
  o.heads = 2;
  o.prenorm = true;
  LocalMHA m(o);
  const StateDict sd = m.state_dict();
  REQUIRE(sd.size() == 4);
  CHECK(sd.at("norm.weight").shape() == Shape{10});
  CHECK(sd.at("norm.bias").shape() == Shape{10});
  CHECK(sd.at("to_qkv.weight").shape() == Shape{18, 10});
  CHECK(sd.at("to_out.weight").shape() == Shape{10, 6});

  o.prenorm = false;
  o.qk_rmsnorm = true;
  LocalMHA m2(o);
  const StateDict sd2 = m2.state_dict();
  CHECK(sd2.size() == 4);
  CHECK(sd2.count("norm.weight") == 0);
  CHECK(sd2.at("q_scale").shape() == Shape{3});
  CHECK(sd2.at("k_scale").shape() == Shape{3});
}

TEST_CASE("local_attention: a window covering the sequence is dense attention") {
  // w = n: one real window, the look-around fillers are masked out, so non-exact windows
  // attend to everything (non-causal) or to the past (causal).
  const int64_t B = 3, n = 8, d = 4;
  const Tensor q = randn64({B, n, d}, 1), k = randn64({B, n, d}, 2), v = randn64({B, n, d}, 3);
  LocalAttentionOptions o;
  o.window_size = 8;
  o.autopad = true;
  const Tensor dense = attend(q, k, v);
  CHECK(rel_error(local_attention(q, k, v, Tensor(), o), dense) < 1e-13);

  // causal: the same as dense attention with a lower-triangular mask
  o.causal = true;
  std::vector<int> tri;
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) tri.push_back(j <= i);
  const Tensor causal_dense = attend(q, k, v, bool_tensor(tri, {n, n}));
  CHECK(rel_error(local_attention(q, k, v, Tensor(), o), causal_dense) < 1e-13);

  // key padding mask [b, n] with B = b * h: row i of the mask serves heads i*h .. i*h + h - 1
  o.causal = false;
  const Tensor q4 = randn64({1, B, n, d}, 4);
  const Tensor mask = bool_tensor({1, 0, 1, 1, 0, 1, 1, 0}, {1, n});
  const Tensor masked_dense = attend(q4, k.unsqueeze(0), v.unsqueeze(0), mask.reshape({1, 1, 1, n}));
  CHECK(rel_error(local_attention(q4, k.unsqueeze(0), v.unsqueeze(0), mask, o), masked_dense) < 1e-13);
}

TEST_CASE("local_attention: autopad without a mask attends to the zero padding (as the reference)") {
  // n = 5, w = 8: the keys / values are padded with 3 zero rows. Without a key padding mask the
  // reference masks only positions outside the padded sequence, so non-causal queries also see
  // the padded keys (q . 0 = 0, value 0). With a mask, the padding is masked (padded with False).
  const int64_t n = 5, d = 4;
  const Tensor q = randn64({2, n, d}, 8), k = randn64({2, n, d}, 9), v = randn64({2, n, d}, 10);
  LocalAttentionOptions o;
  o.window_size = 8;
  o.autopad = true;
  const Tensor kp = pad(k, {0, 0, 0, 3}), vp = pad(v, {0, 0, 0, 3});
  CHECK(rel_error(local_attention(q, k, v, Tensor(), o), attend(q, kp, vp)) < 1e-13);
  CHECK(rel_error(local_attention(q, k, v, ones({2, n}, DType::Bool), o), attend(q, k, v)) < 1e-13);
  // causal: the padding comes after every real query, so it is masked either way
  o.causal = true;
  std::vector<int> tri;
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) tri.push_back(j <= i);
  CHECK(rel_error(local_attention(q, k, v, Tensor(), o), attend(q, k, v, bool_tensor(tri, {n, n}))) < 1e-13);
}

TEST_CASE("local_attention: exact window limits each query to |i - j| <= w * look") {
  // non-causal, w = 2, lb = lf = 1, exact: query i sees keys j with i - 2 <= j <= i + 2.
  const int64_t n = 8, d = 3;
  const Tensor q = randn64({2, n, d}, 5), k = randn64({2, n, d}, 6), v = randn64({2, n, d}, 7);
  LocalAttentionOptions o;
  o.window_size = 2;
  o.autopad = true;
  o.exact_windowsize = true;
  std::vector<int> band;
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) band.push_back(std::abs(i - j) <= 2);
  CHECK(rel_error(local_attention(q, k, v, Tensor(), o), attend(q, k, v, bool_tensor(band, {n, n}))) < 1e-13);

  // causal, exact: i - 2 <= j <= i
  o.causal = true;
  std::vector<int> cband;
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) cband.push_back(j <= i && i - j <= 2);
  CHECK(rel_error(local_attention(q, k, v, Tensor(), o), attend(q, k, v, bool_tensor(cband, {n, n}))) < 1e-13);
}

TEST_CASE("LocalMHA: gradcheck (float64, autopad, masks, causal and not)") {
  struct Variant {
    const char* name;
    bool causal;
    bool exact;
    int64_t lb;
    std::optional<int64_t> lf;
    bool prenorm;
    bool qk_rmsnorm;
    bool shared_qk = false;
    bool rotary = false;  // head width 4 (rotary turns pairs) instead of 3
  };
  const Variant variants[] = {
      {"non-causal exact", false, true, 1, 1, true, false},
      {"non-causal not exact, lb 2 lf 0", false, false, 2, 0, true, false},
      {"causal exact", true, true, 1, std::nullopt, true, false},
      {"causal not exact", true, false, 1, std::nullopt, false, false},
      {"non-causal qk_rmsnorm", false, true, 1, 1, false, true},
      {"causal shared_qk", true, true, 1, std::nullopt, true, false, true},
      {"non-causal rotary", false, true, 1, 1, true, false, false, true},
      {"causal rotary, qk_rmsnorm", true, true, 1, std::nullopt, true, true, false, true},
  };
  for (const Variant& var : variants) {
    CAPTURE(var.name);
    LocalMHAOptions o;
    o.dim = 6;
    o.window_size = 3;  // n = 7: not a multiple of the window
    o.dim_head = var.rotary ? 4 : 3;
    o.heads = 2;
    o.use_rotary_pos_emb = var.rotary;
    o.prenorm = var.prenorm;
    o.causal = var.causal;
    o.exact_windowsize = var.exact;
    o.look_backward = var.lb;
    o.look_forward = var.lf;
    o.qk_rmsnorm = var.qk_rmsnorm;
    o.shared_qk = var.shared_qk;
    Generator gen(11);
    LocalMHA m(o, &gen);
    m.to(DType::Float64);
    if (var.prenorm) {
      NoGradGuard ng;  // non-trivial LayerNorm affine parameters
      m.norm->weight.set_data(add_scalar(mul_scalar(randn64({6}, 12), 0.3), 1.0));
      m.norm->bias.set_data(mul_scalar(randn64({6}, 13), 0.3));
    }
    const Tensor x = leaf64({2, 7, 6}, 14);
    const Tensor mask = bool_tensor({1, 1, 0, 1, 1, 1, 0,  //
                                     0, 1, 1, 1, 0, 1, 1},
                                    {2, 7});
    gradcheck_module(m, {x}, [&](const TensorList& in) { return m.forward(in[0], mask); });
    gradcheck_module(m, {x}, [&](const TensorList& in) { return m.forward(in[0]); });
  }
}

TEST_CASE("LocalMHA: a batch row whose mask is all False stays finite") {
  for (bool causal : {false, true}) {
    CAPTURE(causal);
    LocalMHAOptions o;
    o.dim = 8;
    o.window_size = 4;
    o.dim_head = 4;
    o.heads = 2;
    o.prenorm = true;
    o.causal = causal;
    LocalMHA m(o);
    m.to(DType::Float64);
    const Tensor x = leaf64({2, 6, 8}, 21);
    const Tensor mask = bool_tensor({0, 0, 0, 0, 0, 0,  //
                                     1, 0, 1, 1, 0, 1},
                                    {2, 6});
    const Tensor out = m.forward(x, mask);
    CHECK(all_finite(out));
    sum(mul(out, randn64({2, 6, 8}, 22))).backward();
    CHECK(all_finite(x.grad()));
    for (const auto& [name, p] : m.named_parameters()) {
      CAPTURE(name);
      REQUIRE(p.grad().defined());
      CHECK(all_finite(p.grad()));
    }
    // float32 as well
    LocalMHA m32(o);
    const Tensor out32 = m32.forward(x.detach().to(DType::Float32), mask);
    CHECK(all_finite(out32));
  }
}

TEST_CASE("LocalMHA: bad inputs and options") {
  LocalMHAOptions o;
  o.dim = 8;
  o.window_size = 4;
  o.dim_head = 4;
  o.heads = 2;
  LocalMHA m(o);
  const Tensor x = randn({2, 5, 8});
  CHECK_THROWS_WITH_AS(m.forward(randn({5, 8})), Contains("argument 'x'"), colt5::Error);
  CHECK_THROWS_WITH_AS(m.forward(randn({2, 5, 7})), Contains("argument 'x'"), colt5::Error);
  CHECK_THROWS_WITH_AS(m.forward(x.to(DType::Float64)), Contains("argument 'x'"), colt5::Error);
  CHECK_THROWS_WITH_AS(m.forward(x, bool_tensor({1, 1, 1, 1}, {1, 4})), Contains("argument 'mask'"), colt5::Error);
  CHECK_THROWS_WITH_AS(m.forward(x, ones({2, 5})), Contains("argument 'mask'"), colt5::Error);
  CHECK_THROWS_WITH_AS(m.forward(x, ones({2, 5}, DType::Bool).unsqueeze(0)), Contains("argument 'mask'"),
                       colt5::Error);

  auto bad = [&](auto edit, const char* what) {
    LocalMHAOptions b = o;
    edit(b);
    CHECK_THROWS_WITH_AS(LocalMHA{b}, Contains(what), colt5::Error);
  };
  bad([](LocalMHAOptions& b) { b.window_size = 0; }, "option 'window_size'");
  bad([](LocalMHAOptions& b) { b.window_size = -2; }, "option 'window_size'");
  bad([](LocalMHAOptions& b) { b.heads = 0; }, "option 'heads'");
  bad([](LocalMHAOptions& b) { b.dim_head = 0; }, "option 'dim_head'");
  bad([](LocalMHAOptions& b) { b.dim = 0; }, "option 'dim'");
  bad([](LocalMHAOptions& b) { b.look_backward = -1; }, "option 'look_backward'");
  bad([](LocalMHAOptions& b) { b.causal = true; b.look_forward = 1; }, "option 'look_forward'");
  bad([](LocalMHAOptions& b) { b.dropout = 0.1; }, "option 'dropout'");
  bad([](LocalMHAOptions& b) { b.use_rotary_pos_emb = true, b.dim_head = 3; }, "option 'dim_head' expected an even value");
  bad([](LocalMHAOptions& b) { b.use_xpos = true; }, "option 'use_xpos'");
  bad([](LocalMHAOptions& b) { b.qk_scale = 0; }, "option 'qk_scale'");

  // the core: sequence not a multiple of the window without autopad, mismatched shapes
  LocalAttentionOptions a;
  a.window_size = 2;
  const Tensor q = randn({2, 5, 3});
  CHECK_THROWS_WITH_AS(local_attention(q, q, q, Tensor(), a), Contains("argument 'q'"), colt5::Error);
  a.autopad = true;
  CHECK_THROWS_WITH_AS(local_attention(q, randn({2, 4, 3}), q, Tensor(), a), Contains("argument 'k'"), colt5::Error);
  CHECK_THROWS_WITH_AS(local_attention(q, q, q, ones({3, 5}, DType::Bool), a), Contains("argument 'mask'"),
                       colt5::Error);
  a.window_size = 0;
  CHECK_THROWS_WITH_AS(local_attention(q, q, q, Tensor(), a), Contains("option 'window_size'"), colt5::Error);
}

// =============================================================================================
// Heavy attention
// =============================================================================================

TEST_CASE("Attention: parameter names and shapes") {
  AttentionOptions o;
  o.dim = 10;
  o.dim_head = 3;
  o.heads = 4;
  Attention m(o);
  const StateDict sd = m.state_dict();
  REQUIRE(sd.size() == 5);
  CHECK(sd.at("norm.gamma").shape() == Shape{10});
  CHECK(sd.at("null_kv").shape() == Shape{2, 4, 3});
  CHECK(sd.at("to_q.weight").shape() == Shape{12, 10});
  CHECK(sd.at("to_kv.weight").shape() == Shape{24, 10});
  CHECK(sd.at("to_out.weight").shape() == Shape{10, 12});
}

TEST_CASE("Attention: one route with a 3-D context equals the same context as one 4-D route") {
  AttentionOptions o;
  o.dim = 6;
  o.dim_head = 3;
  o.heads = 2;
  o.multiply_keys_by_score = true;
  Attention m(o);
  m.to(DType::Float64);
  const Tensor x = randn64({2, 3, 6}, 31), ctx = randn64({2, 5, 6}, 32), s = randn64({2, 5}, 33);
  const Tensor mask = bool_tensor({1, 0, 1, 1, 0, 0, 1, 1, 1, 1}, {2, 5});
  const Tensor a = m.forward(x, ctx, mask, s);
  const Tensor b = m.forward(x, ctx.unsqueeze(1), mask.unsqueeze(1), s.unsqueeze(1));
  CHECK(rel_error(a, b) < 1e-14);
  // no context: self-attention over the normed x
  CHECK(rel_error(m.forward(x), m.forward(x, x)) < 1e-14);
}

TEST_CASE("Attention: gradcheck (float64, routes, null kv, masks, scores)") {
  for (bool mkbs : {true, false}) {
    CAPTURE(mkbs);
    AttentionOptions o;
    o.dim = 6;
    o.dim_head = 3;
    o.heads = 4;
    o.multiply_keys_by_score = mkbs;
    Generator gen(41);
    Attention m(o, &gen);
    m.to(DType::Float64);
    {
      NoGradGuard ng;
      m.norm->gamma.set_data(add_scalar(mul_scalar(randn64({6}, 42), 0.3), 1.0));
    }
    const Tensor x = leaf64({2, 3, 6}, 43);
    const Tensor ctx = leaf64({2, 2, 4, 6}, 44);
    const Tensor skv = leaf64({2, 2, 4}, 45);
    const Tensor sq = leaf64({2, 3}, 46);
    const Tensor mask = bool_tensor({1, 0, 1, 1, 0, 1, 1, 0,  //
                                     0, 0, 0, 0, 1, 1, 0, 1},
                                    {2, 2, 4});
    gradcheck_module(m, {x, ctx, skv, sq},
                     [&](const TensorList& in) { return m.forward(in[0], in[1], mask, in[2], in[3]); });
    // 3-D context (one route), 2-D mask and scores
    const Tensor ctx3 = leaf64({2, 4, 6}, 47);
    const Tensor skv2 = leaf64({2, 4}, 48);
    const Tensor mask2 = bool_tensor({1, 1, 0, 1, 0, 1, 1, 1}, {2, 4});
    gradcheck_module(m, {x, ctx3, skv2},
                     [&](const TensorList& in) { return m.forward(in[0], in[1], mask2, in[2]); });
    // self-attention, nothing optional
    gradcheck_module(m, {x}, [&](const TensorList& in) { return m.forward(in[0]); });
  }
}

TEST_CASE("Attention: a batch row whose mask is all False attends to the null key only") {
  AttentionOptions o;
  o.dim = 6;
  o.dim_head = 3;
  o.heads = 2;
  Attention m(o);
  m.to(DType::Float64);
  const Tensor x = leaf64({2, 3, 6}, 51);
  const Tensor ctx = leaf64({2, 2, 4, 6}, 52);
  const Tensor mask = bool_tensor({0, 0, 0, 0, 0, 0, 0, 0,  //
                                   1, 0, 1, 1, 0, 1, 1, 0},
                                  {2, 2, 4});
  const Tensor out = m.forward(x, ctx, mask);
  CHECK(all_finite(out));
  sum(mul(out, randn64({2, 3, 6}, 53))).backward();
  CHECK(all_finite(x.grad()));
  CHECK(all_finite(ctx.grad()));
  // batch row 0 sees only the null value: out = to_out(null v of each head), for every query
  {
    NoGradGuard ng;
    const Tensor nv = m.null_kv.select(0, 1).reshape({1, 6});  // [1, h d]
    const Tensor expected = m.to_out->forward(nv).reshape({6});
    for (int64_t i = 0; i < 3; ++i) CHECK(rel_error(out.detach().select(0, 0).select(0, i), expected) < 1e-14);
    // and the context of row 0 gets no gradient
    CHECK(rel_error(ctx.grad().select(0, 0), zeros({2, 4, 6}, DType::Float64)) == 0.0);
  }
  for (const auto& [name, p] : m.named_parameters()) {
    CAPTURE(name);
    REQUIRE(p.grad().defined());
    CHECK(all_finite(p.grad()));
  }
}

TEST_CASE("Attention: bad inputs and options") {
  AttentionOptions o;
  o.dim = 8;
  o.dim_head = 2;
  o.heads = 4;
  Attention m(o);
  const Tensor x = randn({2, 3, 8});
  const Tensor ctx = randn({2, 2, 5, 8});
  CHECK_THROWS_WITH_AS(m.forward(randn({3, 8})), Contains("argument 'x'"), colt5::Error);
  CHECK_THROWS_WITH_AS(m.forward(randn({2, 3, 7})), Contains("argument 'x'"), colt5::Error);
  CHECK_THROWS_WITH_AS(m.forward(x, randn({2, 5, 7})), Contains("argument 'context'"), colt5::Error);
  CHECK_THROWS_WITH_AS(m.forward(x, randn({3, 5, 8})), Contains("argument 'context'"), colt5::Error);
  CHECK_THROWS_WITH_AS(m.forward(x, randn({5, 8})), Contains("argument 'context'"), colt5::Error);
  CHECK_THROWS_WITH_AS(m.forward(x, randn({2, 3, 5, 8})), Contains("divisor of heads"), colt5::Error);
  CHECK_THROWS_WITH_AS(m.forward(x, ctx, ones({2, 2, 4}, DType::Bool)), Contains("argument 'mask'"), colt5::Error);
  CHECK_THROWS_WITH_AS(m.forward(x, ctx, ones({2, 3, 5}, DType::Bool)), Contains("argument 'mask'"), colt5::Error);
  CHECK_THROWS_WITH_AS(m.forward(x, ctx, ones({2, 2, 5})), Contains("argument 'mask'"), colt5::Error);
  CHECK_THROWS_WITH_AS(m.forward(x, ctx, Tensor(), ones({2, 2, 4})), Contains("argument 'normalized_scores_kv'"),
                       colt5::Error);
  CHECK_THROWS_WITH_AS(m.forward(x, ctx, Tensor(), ones({2, 2, 5}, DType::Float64)),
                       Contains("argument 'normalized_scores_kv'"), colt5::Error);
  CHECK_THROWS_WITH_AS(m.forward(x, ctx, Tensor(), Tensor(), ones({2, 4})), Contains("argument 'normalized_scores_q'"),
                       colt5::Error);

  auto bad = [&](auto edit, const char* what) {
    AttentionOptions b = o;
    edit(b);
    CHECK_THROWS_WITH_AS(Attention{b}, Contains(what), colt5::Error);
  };
  bad([](AttentionOptions& b) { b.dim = 0; }, "option 'dim'");
  bad([](AttentionOptions& b) { b.heads = 0; }, "option 'heads'");
  bad([](AttentionOptions& b) { b.dim_head = -1; }, "option 'dim_head'");

  CHECK_THROWS_WITH_AS(attend(randn({2, 3, 4}), randn({2, 5, 3}), randn({2, 5, 4})), Contains("argument 'k'"),
                       colt5::Error);
  CHECK_THROWS_WITH_AS(attend(randn({2, 3, 4}), randn({2, 5, 4}), randn({2, 5, 4}), ones({3, 5})),
                       Contains("argument 'mask'"), colt5::Error);
}

// =============================================================================================
// The fused attention op (autograd/ops/attention.h) against attention_composed, the same math
// from primitive ops: forward and every gradient, float64 and float32, on the CPU.

namespace {

struct FusedCfg {
  int64_t b, h, n, m, d, r = 1;
  bool null = true, mask = false, row_off = false, skv = false, mkbs = false, sq = false;
};

// Leaves of cfg's shapes (float64 values cast to dt, so both dtypes see the same numbers).
struct FusedInputs {
  AttentionInputs in;
  TensorList leaves;  // q, k, v, null_k, null_v, score_kv, score_q (undefined when absent)
};

FusedInputs make_fused_inputs(const FusedCfg& c, DType dt, uint64_t seed) {
  auto leaf = [&](const Shape& s, uint64_t k, double scale = 1.0, double shift = 0.0) {
    return add_scalar(mul_scalar(randn64(s, seed + k), scale), shift).to(dt).requires_grad_(true);
  };
  FusedInputs f;
  f.in.q = leaf({c.b, c.h, c.n, c.d}, 0);
  f.in.k = leaf({c.b, c.h, c.m, c.d}, 1);
  f.in.v = leaf({c.b, c.h, c.m, c.d}, 2);
  if (c.null) f.in.null_k = leaf({c.h, c.d}, 3), f.in.null_v = leaf({c.h, c.d}, 4);
  if (c.skv) f.in.score_kv = leaf({c.b, c.r, c.m}, 5, 0.5, 1.0);
  if (c.sq) f.in.score_q = leaf({c.b, c.n}, 6, 0.5, 1.0);
  if (c.mask) {
    std::vector<int> mv(size_t(c.b * c.r * c.m));
    for (size_t i = 0; i < mv.size(); ++i) mv[i] = (i * 5 + seed) % 3 != 0;
    if (c.row_off)
      for (int64_t t = 0; t < c.m; ++t) mv[size_t(t)] = 0;  // (batch 0, route 0): every key off
    f.in.mask = bool_tensor(mv, {c.b, c.r, c.m});
  }
  f.in.routes = c.r;
  f.in.multiply_keys_by_score = c.mkbs;
  f.in.scale = 1.0 / std::sqrt(double(c.d));
  f.leaves = {f.in.q, f.in.k, f.in.v, f.in.null_k, f.in.null_v, f.in.score_kv, f.in.score_q};
  return f;
}

struct FusedRun {
  Tensor out;
  TensorList grads;  // per leaf, undefined when the leaf is
};

template <class Fn>
FusedRun run_fused(const FusedCfg& c, DType dt, Fn fn) {
  FusedInputs f = make_fused_inputs(c, dt, 100);
  FusedRun r;
  Tensor out = fn(f.in);
  const Tensor g = randn64(out.shape(), 200).to(dt);
  sum(mul(out, g)).backward();
  r.out = out.detach();
  for (const Tensor& t : f.leaves) r.grads.push_back(t.defined() ? t.grad() : Tensor());
  return r;
}

const FusedCfg kFusedCfgs[] = {
    {.b = 2, .h = 2, .n = 5, .m = 7, .d = 4},
    {.b = 2, .h = 4, .n = 4, .m = 6, .d = 5, .r = 2, .mask = true, .skv = true, .mkbs = true, .sq = true},
    {.b = 2, .h = 4, .n = 3, .m = 5, .d = 6, .r = 2, .null = false, .mask = true, .row_off = true, .skv = true},
    {.b = 2, .h = 2, .n = 6, .m = 9, .d = 8, .mask = true, .row_off = true, .skv = true, .mkbs = true, .sq = true},
    {.b = 1, .h = 2, .n = 7, .m = 70, .d = 3, .r = 2, .null = false, .mask = true, .sq = true},
    {.b = 1, .h = 2, .n = 4, .m = 0, .d = 3},
};

}  // namespace

TEST_CASE("attention op: fused equals attention_composed, forward and every gradient (CPU, float64, float32)") {
  const char* names[] = {"q", "k", "v", "null_k", "null_v", "score_kv", "score_q"};
  for (const FusedCfg& c : kFusedCfgs) {
    for (DType dt : {DType::Float64, DType::Float32}) {
      CAPTURE(c.n);
      CAPTURE(c.m);
      CAPTURE(c.d);
      CAPTURE(dtype_name(dt));
      const double tol = dt == DType::Float64 ? 1e-12 : 2e-5;
      const FusedRun fused = run_fused(c, dt, [](const AttentionInputs& in) { return attention(in); });
      if (c.m == 0) {  // the composed path has no [.., 0] matmul to check against: only the null key
        CHECK(all_finite(fused.out));
        continue;
      }
      const FusedRun comp = run_fused(c, dt, [](const AttentionInputs& in) { return attention_composed(in); });
      CHECK(rel_error(fused.out, comp.out) < tol);
      for (size_t i = 0; i < comp.grads.size(); ++i) {
        CAPTURE(names[i]);
        REQUIRE(fused.grads[i].defined() == comp.grads[i].defined());
        if (comp.grads[i].defined()) CHECK(rel_error(fused.grads[i], comp.grads[i]) < tol);
      }
    }
  }
}

TEST_CASE("attention op: a (batch, route) with every key masked and no null key is a uniform softmax") {
  FusedCfg c{.b = 2, .h = 2, .n = 3, .m = 4, .d = 3, .null = false, .mask = true, .row_off = true};
  FusedInputs f = make_fused_inputs(c, DType::Float64, 7);
  const Tensor out = attention(f.in);
  const Tensor mean_v = mul_scalar(sum(f.in.v.detach(), {2}, true), 0.25);  // [b, h, 1, d]
  for (int64_t i = 0; i < 3; ++i) CHECK(rel_error(out.detach().select(0, 0).select(1, i), mean_v.select(0, 0).select(1, 0)) < 1e-14);
  sum(mul(out, randn64(out.shape(), 8))).backward();
  CHECK(all_finite(f.in.q.grad()));
  // no gradient reaches batch 0's queries or keys (ds = 0 on masked slots); the values get p = 1/m
  CHECK(rel_error(f.in.q.grad().select(0, 0), zeros({2, 3, 3}, DType::Float64)) == 0.0);
  CHECK(rel_error(f.in.k.grad().select(0, 0), zeros({2, 4, 3}, DType::Float64)) == 0.0);
}

TEST_CASE("attention op: gradcheck of the fused CPU kernel (float64)") {
  for (const FusedCfg& c : kFusedCfgs) {
    CAPTURE(c.d);
    FusedInputs f = make_fused_inputs(c, DType::Float64, 300);
    TensorList xs;
    for (const Tensor& t : f.leaves)
      if (t.defined()) xs.push_back(t);
    const AttentionInputs base = f.in;
    const GradcheckResult r = gradcheck(
        [&](const TensorList& in) {
          AttentionInputs a = base;
          size_t i = 0;
          a.q = in[i++], a.k = in[i++], a.v = in[i++];
          if (c.null) a.null_k = in[i++], a.null_v = in[i++];
          if (c.skv) a.score_kv = in[i++];
          if (c.sq) a.score_q = in[i++];
          return attention(a);
        },
        xs);
    INFO(r.message);
    CHECK(r.ok);
  }
}

TEST_CASE("attention op: bad arguments name the argument") {
  FusedCfg c{.b = 2, .h = 4, .n = 3, .m = 5, .d = 4, .r = 2, .mask = true, .skv = true, .sq = true};
  const FusedInputs f = make_fused_inputs(c, DType::Float64, 9);
  auto bad = [&](auto edit, const char* what) {
    AttentionInputs in = f.in;
    edit(in);
    CHECK_THROWS_WITH_AS(attention(in), Contains(what), colt5::Error);
    CHECK_THROWS_WITH_AS(ops::attention(in), Contains(what), colt5::Error);
  };
  bad([](AttentionInputs& in) { in.q = Tensor(); }, "argument 'q'");
  bad([](AttentionInputs& in) { in.q = randn64({2, 4, 3}, 1); }, "argument 'q'");
  bad([](AttentionInputs& in) { in.q = ones({2, 4, 3, 4}, DType::Int64); }, "argument 'q'");
  bad([](AttentionInputs& in) { in.k = randn64({2, 4, 5, 3}, 1); }, "argument 'k'");
  bad([](AttentionInputs& in) { in.k = randn64({2, 4, 5, 4}, 1).to(DType::Float32); }, "argument 'k'");
  bad([](AttentionInputs& in) { in.v = randn64({2, 4, 6, 4}, 1); }, "argument 'v'");
  bad([](AttentionInputs& in) { in.null_v = Tensor(); }, "'null_k' and 'null_v'");
  bad([](AttentionInputs& in) { in.null_k = randn64({3, 4}, 1); }, "argument 'null_k'");
  bad([](AttentionInputs& in) { in.null_v = randn64({4, 5}, 1); }, "argument 'null_v'");
  bad([](AttentionInputs& in) { in.routes = 3; }, "argument 'routes'");
  bad([](AttentionInputs& in) { in.routes = 0; }, "argument 'routes'");
  bad([](AttentionInputs& in) { in.mask = ones({2, 2, 5}); }, "argument 'mask'");
  bad([](AttentionInputs& in) { in.mask = ones({2, 1, 5}, DType::Bool); }, "argument 'mask'");
  bad([](AttentionInputs& in) { in.score_kv = randn64({2, 2, 4}, 1); }, "argument 'score_kv'");
  bad([](AttentionInputs& in) { in.score_kv = randn64({2, 2, 5}, 1).to(DType::Float32); }, "argument 'score_kv'");
  bad([](AttentionInputs& in) { in.score_q = randn64({2, 4}, 1); }, "argument 'score_q'");
  bad([](AttentionInputs& in) { in.scale = std::nan(""); }, "argument 'scale'");
  bad(
      [](AttentionInputs& in) {
        in.null_k = in.null_v = Tensor();
        in.k = randn64({2, 4, 0, 4}, 1), in.v = randn64({2, 4, 0, 4}, 2);
        in.mask = in.score_kv = Tensor();
      },
      "at least one key");
  // the raw backward checks its gradient argument too
  const ops::AttentionResult fwd = ops::attention(f.in);
  const bool need[7] = {true, true, true, true, true, true, true};
  CHECK_THROWS_WITH_AS(ops::attention_backward(f.in, fwd, randn64({2, 4, 3, 5}, 1), need), Contains("argument 'g'"),
                       colt5::Error);
}

namespace {
int g_fused_forward_calls = 0;
void counting_forward(const AttentionInputs& in, Tensor& out, Tensor& lse) {
  ++g_fused_forward_calls;
  cpu::attention_forward(in, out, lse);
}
bool never_supported(const AttentionInputs&) { return false; }
}  // namespace

TEST_CASE("attention op: when supports() is false the composed fallback runs (same results)") {
  auto* const old_supports = kernels::attention_supports.fns[int(DeviceType::CPU)];
  auto* const old_forward = kernels::attention_forward.fns[int(DeviceType::CPU)];
  kernels::attention_forward.set(DeviceType::CPU, &counting_forward);
  struct Restore {  // also on a failed REQUIRE
    decltype(old_supports) s;
    decltype(old_forward) f;
    ~Restore() {
      kernels::attention_supports.set(DeviceType::CPU, s);
      kernels::attention_forward.set(DeviceType::CPU, f);
    }
  } restore{old_supports, old_forward};
  const FusedCfg c = kFusedCfgs[1];
  g_fused_forward_calls = 0;
  const FusedRun fused = run_fused(c, DType::Float64, [](const AttentionInputs& in) { return attention(in); });
  CHECK(g_fused_forward_calls == 1);
  kernels::attention_supports.set(DeviceType::CPU, &never_supported);
  g_fused_forward_calls = 0;
  const FusedRun fallback = run_fused(c, DType::Float64, [](const AttentionInputs& in) { return attention(in); });
  CHECK(g_fused_forward_calls == 0);
  CHECK(rel_error(fallback.out, fused.out) < 1e-12);
  for (size_t i = 0; i < fused.grads.size(); ++i)
    if (fused.grads[i].defined()) CHECK(rel_error(fallback.grads[i], fused.grads[i]) < 1e-12);
  // nn::Attention goes through the same op
  AttentionOptions o;
  o.dim = 6, o.dim_head = 3, o.heads = 2;
  Attention mod(o);
  mod.to(DType::Float64);
  const Tensor x = randn64({2, 3, 6}, 5);
  const Tensor y_fallback = mod.forward(x);
  kernels::attention_supports.set(DeviceType::CPU, old_supports);
  const Tensor y_fused = mod.forward(x);
  CHECK(g_fused_forward_calls == 1);
  CHECK(rel_error(y_fallback, y_fused) < 1e-12);
}
