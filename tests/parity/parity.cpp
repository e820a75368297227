// Golden parity runner (see parity.h for the procedure and the error measure).
//
// Each op / module kind has a builder that reads its configuration through Config — which
// records every key it reads, so that whatever is left over is reported as not understood — and
// returns the module (if any), the forward inputs it accepts and a closure that runs forward.
#include "tests/parity/parity.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <utility>

#include "autograd/ops.h"
#include "autograd/ops/coor_descent.h"
#include "autograd/ops/sinkhorn.h"
#include "nn/attention.h"
#include "nn/image.h"
#include "nn/json_read.h"
#include "nn/layers.h"
#include "nn/local_attention.h"
#include "nn/routed.h"
#include "nn/routers.h"
#include "nn/safetensors.h"
#include "nn/topk.h"

namespace colt5::parity {

namespace {

using json = nlohmann::json;
using Inputs = std::map<std::string, Tensor>;

bool starts_with(const std::string& s, const std::string& prefix) {
  return s.size() >= prefix.size() && s.compare(0, prefix.size(), prefix) == 0;
}

// ---------------------------------------------------------------------------------------------
// Config: typed access to one JSON object that remembers which keys were read. A JSON null is
// Python's None: the key keeps its default.
class Config {
public:
  Config(const json& j, std::string where) : j_(j), where_(std::move(where)) {
    COLT5_CHECK(j_.is_object(), where_, ": expected a JSON object, got ", nn::json_excerpt(j_));
  }

  bool has(const std::string& k) const { return j_.contains(k) && !j_.at(k).is_null(); }

  // The raw value (nullptr when absent or null); marks the key as understood.
  const json* raw(const std::string& k) {
    used_.insert(k);
    return has(k) ? &j_.at(k) : nullptr;
  }

  void read(const std::string& k, int64_t& v) {
    if (const json* p = raw(k)) {
      if (p->is_number_integer()) {
        v = p->get<int64_t>();
      } else {
        COLT5_CHECK(p->is_number_float() && std::floor(p->get<double>()) == p->get<double>(), where_, ": key '", k,
                    "' expected an integer, got ", nn::json_excerpt(*p));
        v = int64_t(p->get<double>());
      }
    }
  }
  void read(const std::string& k, double& v) {
    if (const json* p = raw(k)) {
      COLT5_CHECK(p->is_number(), where_, ": key '", k, "' expected a number, got ", nn::json_excerpt(*p));
      v = p->get<double>();
    }
  }
  void read(const std::string& k, bool& v) {
    if (const json* p = raw(k)) {
      COLT5_CHECK(p->is_boolean(), where_, ": key '", k, "' expected true or false, got ", nn::json_excerpt(*p));
      v = p->get<bool>();
    }
  }
  void read(const std::string& k, std::string& v) {
    if (const json* p = raw(k)) {
      COLT5_CHECK(p->is_string(), where_, ": key '", k, "' expected a string, got ", nn::json_excerpt(*p));
      v = p->get<std::string>();
    }
  }
  template <class T>
  void read(const std::string& k, std::optional<T>& v) {
    if (!has(k)) {
      used_.insert(k);
      return;
    }
    T t{};
    read(k, t);
    v = t;
  }
  template <class T>
  T required(const std::string& k) {
    COLT5_CHECK(has(k), where_, ": required key '", k, "' is missing");
    T t{};
    read(k, t);
    return t;
  }
  // A nested object (nullptr when absent).
  const json* object(const std::string& k) {
    const json* p = raw(k);
    if (p) COLT5_CHECK(p->is_object(), where_, ": key '", k, "' expected a JSON object, got ", nn::json_excerpt(*p));
    return p;
  }

  // Every key must have been read.
  void finish() const {
    std::vector<std::string> unknown;
    for (auto it = j_.begin(); it != j_.end(); ++it)
      if (!used_.count(it.key())) unknown.push_back(it.key());
    COLT5_CHECK(unknown.empty(), where_, ": key(s) not understood: ", unknown);
  }

private:
  const json& j_;
  std::string where_;
  std::set<std::string> used_;
};

// ---------------------------------------------------------------------------------------------
// Builders

struct Outcome {
  Tensor output;
  Tensor indices;  // routers
};

struct Built {
  std::shared_ptr<nn::Module> module;  // null for ops
  std::vector<std::string> inputs;     // forward inputs accepted
  std::vector<std::string> required;   // of which required
  std::function<Outcome(const Inputs&)> run;
};

using Builder = std::function<Built(Config&)>;

Tensor get(const Inputs& in, const std::string& name) {
  auto it = in.find(name);
  return it == in.end() ? Tensor() : it->second;
}

nn::RouterKwargs read_router_kwargs(Config& c) {
  nn::RouterKwargs kw;
  if (const json* p = c.object("router_kwargs")) {
    Config k(*p, "config.router_kwargs");
    k.read("n_iters", kw.n_iters);
    k.read("fetch_k_ratio", kw.fetch_k_ratio);
    k.read("eps", kw.eps);
    k.read("temperature", kw.temperature);
    k.read("use_triton", kw.use_triton);
    k.read("eps_init", kw.eps_init);
    k.read("eps_decay", kw.eps_decay);
    k.read("cosine_sim_routing", kw.cosine_sim_routing);
    k.read("cosine_sim_scale", kw.cosine_sim_scale);
    k.read("route_block_size", kw.route_block_size);
    k.finish();
  }
  return kw;
}

// Per-call overrides of the routed modules: config "forward": {"<name>": int, ...}.
std::map<std::string, std::optional<int64_t>> read_forward(Config& c, const std::vector<std::string>& names) {
  std::map<std::string, std::optional<int64_t>> out;
  for (const auto& n : names) out[n] = std::nullopt;
  if (const json* p = c.object("forward")) {
    Config f(*p, "config.forward");
    for (const auto& n : names) f.read(n, out[n]);
    f.finish();
  }
  return out;
}

Built build_coor_descent(Config& c) {
  const int64_t n_iters = c.required<int64_t>("n_iters");
  const double k = c.required<double>("k");
  CoorDescentOptions o;
  o.n_iters = n_iters;
  c.read("eps", o.eps);
  c.read("eps_init", o.eps_init);
  c.read("eps_decay", o.eps_decay);
  std::optional<bool> masked;
  c.read("masked", masked);
  Built b;
  b.inputs = {"s", "mask"};
  b.required = {"s"};
  b.run = [=](const Inputs& in) -> Outcome {
    Tensor mask = get(in, "mask");
    if (masked) {
      COLT5_CHECK(*masked == mask.defined(), "config says masked = ", *masked ? "true" : "false",
                  " but the fixture ", mask.defined() ? "has" : "has no", " input.mask");
    }
    return {coor_descent(get(in, "s"), k, o, mask), Tensor()};
  };
  return b;
}

// 0.11.1's differentiable top-k (topk.py): output = the values, aux.indices = the indices.
Built build_topk(Config& c) {
  const int64_t k = c.required<int64_t>("k");
  nn::TopkOptions o;
  c.read("coor_descent_k_ratio", o.coor_descent_k_ratio);
  c.read("n_iters", o.n_iters);
  c.read("eps", o.eps);
  c.read("eps_init", o.eps_init);
  c.read("eps_decay", o.eps_decay);
  c.read("fused", o.fused);
  c.read("non_differentiable", o.non_differentiable);
  Built b;
  b.inputs = {"x", "mask"};
  b.required = {"x"};
  b.run = [=](const Inputs& in) -> Outcome {
    nn::TopkResult r = nn::differentiable_topk(get(in, "x"), k, o, get(in, "mask"));
    return {r.values, r.indices};
  };
  return b;
}

Built build_sinkhorn(Config& c) {
  int64_t n_iters = 8;
  c.read("n_iters", n_iters);
  Built b;
  b.inputs = {"r"};
  b.required = {"r"};
  b.run = [=](const Inputs& in) -> Outcome { return {sinkhorn(get(in, "r"), n_iters), Tensor()}; };
  return b;
}

Built build_rmsnorm(Config& c) {
  auto m = std::make_shared<nn::RMSNorm>(c.required<int64_t>("dim"));
  Built b;
  b.module = m;
  b.inputs = b.required = {"x"};
  b.run = [m](const Inputs& in) -> Outcome { return {m->forward(get(in, "x")), Tensor()}; };
  return b;
}

Built build_feedforward(Config& c) {
  const int64_t dim = c.required<int64_t>("dim");
  nn::FeedForwardOptions o;
  c.read("mult", o.mult);
  // The fixture documents the layer list; it must be the one FeedForward builds.
  std::optional<std::string> layers;
  c.read("layers", layers);
  const std::string expected = "0=RMSNorm 1=Linear 2=GELU(erf) 3=Linear";
  COLT5_CHECK(!layers || *layers == expected, "config: key 'layers' expected '", expected, "', got '", *layers, "'");
  auto m = std::make_shared<nn::FeedForward>(dim, o);
  Built b;
  b.module = m;
  b.inputs = b.required = {"x"};
  b.run = [m](const Inputs& in) -> Outcome { return {m->forward(get(in, "x")), Tensor()}; };
  return b;
}

Built build_local_mha(Config& c) {
  nn::LocalMHAOptions o;
  o.dim = c.required<int64_t>("dim");
  o.window_size = c.required<int64_t>("window_size");
  c.read("dim_head", o.dim_head);
  c.read("heads", o.heads);
  c.read("dropout", o.dropout);
  c.read("causal", o.causal);
  c.read("prenorm", o.prenorm);
  c.read("qk_rmsnorm", o.qk_rmsnorm);
  c.read("qk_scale", o.qk_scale);
  c.read("use_xpos", o.use_xpos);
  c.read("xpos_scale_base", o.xpos_scale_base);
  c.read("exact_windowsize", o.exact_windowsize);
  c.read("look_backward", o.look_backward);
  c.read("look_forward", o.look_forward);
  c.read("shared_qk", o.shared_qk);
  c.read("use_rotary_pos_emb", o.use_rotary_pos_emb);
  // LocalMHA always builds its LocalAttention with autopad = True; the fixture records it.
  std::optional<bool> autopad;
  c.read("autopad", autopad);
  COLT5_CHECK(!autopad || *autopad, "config: key 'autopad' = false is not supported (LocalMHA always autopads)");
  auto m = std::make_shared<nn::LocalMHA>(o);
  Built b;
  b.module = m;
  b.inputs = {"x", "mask"};
  b.required = {"x"};
  b.run = [m](const Inputs& in) -> Outcome { return {m->forward(get(in, "x"), get(in, "mask")), Tensor()}; };
  return b;
}

Built build_attention(Config& c) {
  nn::AttentionOptions o;
  o.dim = c.required<int64_t>("dim");
  c.read("dim_head", o.dim_head);
  c.read("heads", o.heads);
  c.read("multiply_keys_by_score", o.multiply_keys_by_score);
  c.read("use_flash", o.use_flash);
  // The fixture records the number of key / value routes of its context input.
  std::optional<int64_t> kv_routes;
  c.read("kv_routes", kv_routes);
  auto m = std::make_shared<nn::Attention>(o);
  Built b;
  b.module = m;
  b.inputs = {"x", "context", "mask", "normalized_scores_kv", "normalized_scores_q"};
  b.required = {"x"};
  b.run = [m, kv_routes](const Inputs& in) -> Outcome {
    Tensor context = get(in, "context");
    if (kv_routes) {
      const int64_t routes = context.defined() && context.dim() == 4 ? context.size(1) : 1;
      COLT5_CHECK(routes == *kv_routes, "config says kv_routes = ", *kv_routes, " but input.context has ", routes);
    }
    return {m->forward(get(in, "x"), context, get(in, "mask"), get(in, "normalized_scores_kv"),
                       get(in, "normalized_scores_q")),
            Tensor()};
  };
  return b;
}

template <class R>
Built router_built(std::shared_ptr<R> m, int64_t num_tokens) {
  Built b;
  b.module = m;
  b.inputs = {"x", "mask"};
  b.required = {"x"};
  b.run = [m, num_tokens](const Inputs& in) -> Outcome {
    nn::RouterOutput o = m->forward(get(in, "x"), num_tokens, get(in, "mask"));
    return {o.scores, o.indices};
  };
  return b;
}

Built build_coor_descent_router(Config& c) {
  const int64_t dim = c.required<int64_t>("dim");
  const int64_t num_tokens = c.required<int64_t>("num_tokens");  // forward argument
  nn::CoordinateDescentRouterOptions o;
  c.read("straight_through", o.straight_through);
  c.read("n_iters", o.n_iters);
  c.read("fetch_k_ratio", o.fetch_k_ratio);
  c.read("eps", o.eps);
  c.read("num_routing_tokens", o.num_routing_tokens);
  c.read("use_triton", o.use_triton);
  c.read("eps_init", o.eps_init);  // 0.11.1's options
  c.read("eps_decay", o.eps_decay);
  c.read("cosine_sim_routing", o.cosine_sim_routing);
  c.read("cosine_sim_scale", o.cosine_sim_scale);
  c.read("route_block_size", o.route_block_size);
  c.read("learned_routing_tokens", o.learned_routing_tokens);
  if (!o.learned_routing_tokens)
    return router_built<nn::CoordinateDescentRouter>(std::make_shared<nn::CoordinateDescentRouter>(dim, o), num_tokens);
  // the routing tokens are a forward input
  auto m = std::make_shared<nn::CoordinateDescentRouter>(dim, o);
  Built b;
  b.module = m;
  b.inputs = {"x", "mask", "routing_tokens"};
  b.required = {"x", "routing_tokens"};
  b.run = [m, num_tokens](const Inputs& in) -> Outcome {
    nn::RouteCallOptions call;
    call.routing_tokens = get(in, "routing_tokens");
    nn::RouterOutput r = m->forward(get(in, "x"), num_tokens, get(in, "mask"), call);
    return {r.scores, r.indices};
  };
  return b;
}

Built build_topk_router(Config& c) {
  const int64_t dim = c.required<int64_t>("dim");
  const int64_t num_tokens = c.required<int64_t>("num_tokens");
  nn::DifferentiableTopKRouterOptions o;
  c.read("straight_through", o.straight_through);
  c.read("temperature", o.temperature);
  c.read("num_routing_tokens", o.num_routing_tokens);
  return router_built<nn::DifferentiableTopKRouter>(
      std::make_shared<nn::DifferentiableTopKRouter>(dim, o), num_tokens);
}

Built build_sinkhorn_router(Config& c) {
  const int64_t dim = c.required<int64_t>("dim");
  const int64_t num_tokens = c.required<int64_t>("num_tokens");
  nn::SinkhornRouterOptions o;
  c.read("straight_through", o.straight_through);
  c.read("n_iters", o.n_iters);
  c.read("temperature", o.temperature);
  c.read("num_routing_tokens", o.num_routing_tokens);
  return router_built<nn::SinkhornRouter>(std::make_shared<nn::SinkhornRouter>(dim, o), num_tokens);
}

Built build_routed_ff(Config& c) {
  const int64_t dim = c.required<int64_t>("dim");
  nn::ConditionalRoutedFeedForwardOptions o;
  o.num_heavy_tokens = c.required<int64_t>("num_heavy_tokens");
  c.read("light_ff_mult", o.light_ff_mult);
  c.read("heavy_ff_mult", o.heavy_ff_mult);
  c.read("router_straight_through", o.router_straight_through);
  c.read("router_type", o.router_type);
  o.router_kwargs = read_router_kwargs(c);
  c.read("use_triton", o.use_triton);
  auto fw = read_forward(c, {"num_heavy_tokens"});
  auto m = std::make_shared<nn::ConditionalRoutedFeedForward>(dim, o);
  Built b;
  b.module = m;
  b.inputs = {"x", "mask"};
  b.required = {"x"};
  b.run = [m, fw](const Inputs& in) -> Outcome {
    return {m->forward(get(in, "x"), get(in, "mask"), fw.at("num_heavy_tokens")), Tensor()};
  };
  return b;
}

// The options ConditionalRoutedAttention, ...AutoregressiveAttention and ...TransformerBlock share
// (same names in the three option structs and in the reference's keyword arguments).
template <class Options>
void read_routed_attention_options(Config& c, Options& o) {
  c.read("num_routed_kv", o.num_routed_kv);
  c.read("light_dim_head", o.light_dim_head);
  c.read("light_heads", o.light_heads);
  c.read("light_window_size", o.light_window_size);
  c.read("heavy_dim_head", o.heavy_dim_head);
  c.read("heavy_heads", o.heavy_heads);
  c.read("router_straight_through", o.router_straight_through);
  c.read("router_type", o.router_type);
  o.router_kwargs = read_router_kwargs(c);
  c.read("multiply_keys_by_score", o.multiply_keys_by_score);
  c.read("multiply_queries_by_score", o.multiply_queries_by_score);
  c.read("use_triton", o.use_triton);
  c.read("use_null_q_tokens", o.use_null_q_tokens);
  c.read("use_flash_attn", o.use_flash_attn);
}

Built build_routed_attention(Config& c) {
  const int64_t dim = c.required<int64_t>("dim");
  nn::ConditionalRoutedAttentionOptions o;
  o.num_heavy_tokens_q = c.required<int64_t>("num_heavy_tokens_q");
  o.num_heavy_tokens_kv = c.required<int64_t>("num_heavy_tokens_kv");
  read_routed_attention_options(c, o);
  c.read("has_light_attn", o.has_light_attn);  // 0.11.1
  c.read("rotary_emb", o.rotary_emb);          // 0.11.1
  auto fw = read_forward(c, {"num_heavy_tokens_q", "num_heavy_tokens_kv"});
  auto m = std::make_shared<nn::ConditionalRoutedAttention>(dim, o);
  Built b;
  b.module = m;
  b.inputs = {"x", "mask"};
  b.required = {"x"};
  b.run = [m, fw](const Inputs& in) -> Outcome {
    return {m->forward(get(in, "x"), get(in, "mask"), fw.at("num_heavy_tokens_q"), fw.at("num_heavy_tokens_kv")),
            Tensor()};
  };
  return b;
}

Built build_image_attention(Config& c) {  // 0.11.1
  const int64_t dim = c.required<int64_t>("dim");
  nn::ConditionalRoutedImageAttentionOptions o;
  o.num_heavy_tokens_q = c.required<int64_t>("num_heavy_tokens_q");
  o.num_heavy_tokens_kv = c.required<int64_t>("num_heavy_tokens_kv");
  c.read("num_routed_kv", o.num_routed_kv);
  c.read("light_dim_head", o.light_dim_head);
  c.read("light_heads", o.light_heads);
  c.read("light_window_size", o.light_window_size);
  c.read("heavy_dim_head", o.heavy_dim_head);
  c.read("heavy_heads", o.heavy_heads);
  c.read("router_straight_through", o.router_straight_through);
  o.router_kwargs = read_router_kwargs(c);
  c.read("multiply_keys_by_score", o.multiply_keys_by_score);
  c.read("multiply_queries_by_score", o.multiply_queries_by_score);
  c.read("use_triton", o.use_triton);
  c.read("use_null_q_tokens", o.use_null_q_tokens);
  c.read("use_flash_attn", o.use_flash_attn);
  c.read("channel_first", o.channel_first);
  auto m = std::make_shared<nn::ConditionalRoutedImageAttention>(dim, o);
  Built b;
  b.module = m;
  b.inputs = b.required = {"x"};
  b.run = [m](const Inputs& in) -> Outcome { return {m->forward(get(in, "x")), Tensor()}; };
  return b;
}

Built build_vit(Config& c) {  // 0.11.1's vit.py
  nn::ConditionalRoutedViTOptions o;
  o.image_size = c.required<int64_t>("image_size");
  o.patch_size = c.required<int64_t>("patch_size");
  o.num_classes = c.required<int64_t>("num_classes");
  o.dim = c.required<int64_t>("dim");
  o.depth = c.required<int64_t>("depth");
  o.attn_num_heavy_tokens_q = c.required<int64_t>("attn_num_heavy_tokens_q");
  o.attn_num_heavy_tokens_kv = c.required<int64_t>("attn_num_heavy_tokens_kv");
  o.attn_heavy_dim_head = c.required<int64_t>("attn_heavy_dim_head");
  o.attn_heavy_heads = c.required<int64_t>("attn_heavy_heads");
  o.attn_light_dim_head = c.required<int64_t>("attn_light_dim_head");
  o.attn_light_heads = c.required<int64_t>("attn_light_heads");
  o.attn_light_window_size = c.required<int64_t>("attn_light_window_size");
  o.ff_num_heavy_tokens = c.required<int64_t>("ff_num_heavy_tokens");
  o.ff_heavy_mult = c.required<double>("ff_heavy_mult");
  o.ff_light_mult = c.required<double>("ff_light_mult");
  c.read("channels", o.channels);
  c.read("router_straight_through", o.router_straight_through);
  o.router_kwargs = read_router_kwargs(c);
  c.read("router_use_triton", o.router_use_triton);
  c.read("flash_attn", o.flash_attn);
  c.read("attn_num_routed_kv", o.attn_num_routed_kv);
  c.read("default_coor_descent_eps", o.default_coor_descent_eps);
  auto m = std::make_shared<nn::ConditionalRoutedViT>(o);
  Built b;
  b.module = m;
  b.inputs = b.required = {"img"};
  b.run = [m](const Inputs& in) -> Outcome { return {m->forward(get(in, "img")), Tensor()}; };
  return b;
}

Built build_routed_ar_attention(Config& c) {
  const int64_t dim = c.required<int64_t>("dim");
  nn::ConditionalRoutedAutoregressiveAttentionOptions o;
  o.num_heavy_tokens_q = c.required<int64_t>("num_heavy_tokens_q");
  o.num_heavy_tokens_kv = c.required<int64_t>("num_heavy_tokens_kv");
  read_routed_attention_options(c, o);
  c.read("heavy_window_size", o.heavy_window_size);
  c.read("rotary_emb", o.rotary_emb);                          // 0.11.1
  c.read("light_exact_windowsize", o.light_exact_windowsize);  // 0.11.1 passes False
  auto fw = read_forward(c, {"num_heavy_tokens_q", "num_heavy_tokens_kv"});
  auto m = std::make_shared<nn::ConditionalRoutedAutoregressiveAttention>(dim, o);
  Built b;
  b.module = m;
  b.inputs = b.required = {"x"};
  b.run = [m, fw](const Inputs& in) -> Outcome {
    return {m->forward(get(in, "x"), fw.at("num_heavy_tokens_q"), fw.at("num_heavy_tokens_kv")), Tensor()};
  };
  return b;
}

Built build_routed_cross_attention(Config& c) {
  const int64_t dim = c.required<int64_t>("dim");
  nn::ConditionalRoutedCrossAttentionOptions o;
  o.num_tokens_q = c.required<int64_t>("num_tokens_q");
  o.num_tokens_kv = c.required<int64_t>("num_tokens_kv");
  c.read("num_sets_kv", o.num_sets_kv);
  c.read("dim_head", o.dim_head);
  c.read("heads", o.heads);
  c.read("router_straight_through", o.router_straight_through);
  c.read("router_type", o.router_type);
  o.router_kwargs = read_router_kwargs(c);
  c.read("kv_routing_tokens", o.kv_routing_tokens);
  c.read("multiply_keys_by_score", o.multiply_keys_by_score);
  c.read("use_triton", o.use_triton);
  c.read("use_null_q_tokens", o.use_null_q_tokens);
  c.read("use_flash_attn", o.use_flash_attn);
  auto fw = read_forward(c, {"num_tokens_q", "num_tokens_kv"});
  auto m = std::make_shared<nn::ConditionalRoutedCrossAttention>(dim, o);
  Built b;
  b.module = m;
  b.inputs = {"x", "context", "mask", "context_mask"};
  b.required = {"x", "context"};
  b.run = [m, fw](const Inputs& in) -> Outcome {
    return {m->forward(get(in, "x"), get(in, "context"), get(in, "mask"), get(in, "context_mask"),
                       fw.at("num_tokens_q"), fw.at("num_tokens_kv")),
            Tensor()};
  };
  return b;
}

Built build_routed_block(Config& c) {
  const int64_t dim = c.required<int64_t>("dim");
  nn::ConditionalRoutedTransformerBlockOptions o;
  o.num_heavy_attn_tokens_q = c.required<int64_t>("num_heavy_attn_tokens_q");
  o.num_heavy_attn_tokens_kv = c.required<int64_t>("num_heavy_attn_tokens_kv");
  o.num_heavy_ff_tokens = c.required<int64_t>("num_heavy_ff_tokens");
  read_routed_attention_options(c, o);
  c.read("light_ff_mult", o.light_ff_mult);
  c.read("heavy_ff_mult", o.heavy_ff_mult);
  auto fw = read_forward(c, {"num_heavy_attn_tokens_q", "num_heavy_attn_tokens_kv", "num_heavy_ff_tokens"});
  auto m = std::make_shared<nn::ConditionalRoutedTransformerBlock>(dim, o);
  Built b;
  b.module = m;
  b.inputs = {"x", "mask"};
  b.required = {"x"};
  b.run = [m, fw](const Inputs& in) -> Outcome {
    return {m->forward(get(in, "x"), get(in, "mask"), fw.at("num_heavy_attn_tokens_q"),
                       fw.at("num_heavy_attn_tokens_kv"), fw.at("num_heavy_ff_tokens")),
            Tensor()};
  };
  return b;
}

const std::map<std::string, Builder>& op_builders() {
  static const std::map<std::string, Builder> m = {
      {"coor_descent", build_coor_descent},
      {"sinkhorn", build_sinkhorn},
      {"topk", build_topk},
  };
  return m;
}

const std::map<std::string, Builder>& module_builders() {
  static const std::map<std::string, Builder> m = {
      {"RMSNorm", build_rmsnorm},
      {"FeedForward", build_feedforward},
      {"LocalMHA", build_local_mha},
      {"ConditionalRoutedImageAttention", build_image_attention},
      {"ConditionalRoutedViT", build_vit},
      {"Attention", build_attention},
      {"CoordinateDescentRouter", build_coor_descent_router},
      {"DifferentiableTopKRouter", build_topk_router},
      {"SinkhornRouter", build_sinkhorn_router},
      {"ConditionalRoutedFeedForward", build_routed_ff},
      {"ConditionalRoutedAttention", build_routed_attention},
      {"ConditionalRoutedAutoregressiveAttention", build_routed_ar_attention},
      {"ConditionalRoutedCrossAttention", build_routed_cross_attention},
      {"ConditionalRoutedTransformerBlock", build_routed_block},
  };
  return m;
}

// ---------------------------------------------------------------------------------------------
// Errors

std::vector<double> host_f64(const Tensor& t) {
  Tensor h = t.detach();
  if (h.device() != kCPU) h = h.cpu();
  if (h.dtype() != DType::Float64) h = h.to(DType::Float64);
  return h.contiguous().to_vector<double>();
}

// max|ours - ref| / max|ref| (absolute when ref is all zeros); NaN in ours only -> infinity.
double relative_error(const Tensor& ours, const Tensor& ref, const std::string& what) {
  COLT5_CHECK(ours.shape() == ref.shape(), what, ": shape ", ours.shape(), " differs from the reference's ",
              ref.shape());
  const std::vector<double> a = host_f64(ours), r = host_f64(ref);
  double max_ref = 0, max_diff = 0;
  for (size_t i = 0; i < r.size(); ++i) {
    if (!std::isnan(r[i])) max_ref = std::max(max_ref, std::abs(r[i]));
    if (std::isnan(r[i]) && std::isnan(a[i])) continue;
    if (std::isnan(r[i]) || std::isnan(a[i])) {
      max_diff = std::numeric_limits<double>::infinity();
      continue;
    }
    max_diff = std::max(max_diff, std::abs(a[i] - r[i]));
  }
  return max_ref > 0 ? max_diff / max_ref : max_diff;
}

std::string sci(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2e", v);
  return buf;
}

}  // namespace

// ---------------------------------------------------------------------------------------------

double default_tolerance(DType dtype) { return dtype == DType::Float32 ? 1e-4 : 1e-9; }

double CaseResult::max_error() const {
  double m = 0;
  for (const auto& e : errors) m = std::isnan(e.err) ? std::numeric_limits<double>::infinity() : std::max(m, e.err);
  return m;
}

CaseResult run_case(const std::string& path, const ParityOptions& opts) {
  // The fixtures are the reference's outputs, whose routers break ties in torch's CPU order.
  const nn::TieOrderGuard parity_mode(nn::TieOrder::TorchCPU);
  CaseResult r;
  r.path = path;
  r.name = std::filesystem::path(path).filename().string();
  const std::string ext = ".safetensors";
  if (r.name.size() > ext.size() && r.name.compare(r.name.size() - ext.size(), ext.size(), ext) == 0)
    r.name.resize(r.name.size() - ext.size());
  r.tol = opts.tol.value_or(default_tolerance(opts.dtype));
  try {
    COLT5_CHECK(is_floating(opts.dtype), "parity: dtype must be float32 or float64, got ", dtype_name(opts.dtype));
    nn::SafetensorsFile file = nn::read_safetensors(path);

    // ---- configuration ----
    auto cfg_it = file.metadata.find("config");
    COLT5_CHECK(cfg_it != file.metadata.end(), "the fixture has no __metadata__ entry 'config'");
    const json j = nn::parse_json_untrusted(cfg_it->second, "metadata 'config'");
    Config cfg(j, "config");
    COLT5_CHECK(cfg.has("op") != cfg.has("module"), "config: expected exactly one of the keys 'op' and 'module'");
    const bool is_op = cfg.has("op");
    std::string kind_name;
    cfg.read(is_op ? "op" : "module", kind_name);
    r.kind = std::string(is_op ? "op " : "module ") + kind_name;
    std::optional<std::string> reference;
    cfg.read("reference", reference);  // provenance note
    const auto& registry = is_op ? op_builders() : module_builders();
    auto bit = registry.find(kind_name);
    COLT5_CHECK(bit != registry.end(), "config: unknown ", is_op ? "op" : "module", " '", kind_name, "'");
    Built built = bit->second(cfg);
    cfg.finish();

    // ---- tensors of the fixture ----
    Inputs inputs;
    nn::StateDict params, grad_inputs, grad_params;
    Tensor output_ref, upstream, indices_ref;
    for (const auto& [name, t] : file.tensors) {
      if (starts_with(name, "input.")) inputs[name.substr(6)] = t;
      else if (starts_with(name, "param.")) params[name.substr(6)] = t;
      else if (starts_with(name, "grad.input.")) grad_inputs[name.substr(11)] = t;
      else if (starts_with(name, "grad.param.")) grad_params[name.substr(11)] = t;
      else if (name == "output") output_ref = t;
      else if (name == "upstream_grad") upstream = t;
      else if (name == "aux.indices") indices_ref = t;
      else fail(str("tensor '", name, "' is not understood"));
    }
    COLT5_CHECK(output_ref.defined(), "the fixture has no tensor 'output'");
    COLT5_CHECK(upstream.defined(), "the fixture has no tensor 'upstream_grad'");
    for (const auto& [name, t] : inputs)
      COLT5_CHECK(std::find(built.inputs.begin(), built.inputs.end(), name) != built.inputs.end(), r.kind,
                  " takes no input '", name, "' (it takes ", built.inputs, ")");
    for (const auto& name : built.required)
      COLT5_CHECK(inputs.count(name), "the fixture lacks the required tensor 'input.", name, "'");
    for (const auto& [name, t] : grad_inputs)
      COLT5_CHECK(inputs.count(name) && inputs.at(name).is_floating_point(), "tensor 'grad.input.", name,
                  "' has no floating input 'input.", name, "'");

    // ---- module state ----
    std::map<std::string, Tensor> named_params;
    if (built.module) {
      built.module->to(opts.dtype);
      built.module->to(opts.device);
      built.module->load_state_dict(params, /*strict=*/true);
      for (auto& [n, t] : built.module->named_parameters()) named_params[n] = t;
    } else {
      COLT5_CHECK(params.empty(), r.kind, " has no parameters, the fixture has ", params.size());
    }
    for (const auto& [name, t] : grad_params)
      COLT5_CHECK(named_params.count(name), "tensor 'grad.param.", name, "' names no parameter of ", r.kind);
    // Every gradient the backward produces must have its expected value in the file: a fixture
    // that leaves one out would pass without that gradient ever being compared.
    for (const auto& [name, t] : inputs)
      COLT5_CHECK(!t.is_floating_point() || grad_inputs.count(name), "the fixture lacks 'grad.input.", name,
                  "', the expected gradient of its floating input 'input.", name, "'");
    for (const auto& [name, t] : named_params)
      COLT5_CHECK(grad_params.count(name), "the fixture lacks 'grad.param.", name, "', the expected gradient of the ",
                  "parameter '", name, "'");

    // ---- forward and backward ----
    Inputs in;
    for (const auto& [name, t] : inputs) {
      Tensor v = t;
      if (v.is_floating_point()) v = v.to(opts.dtype);
      v = v.to(opts.device).detach();
      if (v.is_floating_point()) v.requires_grad_();
      in[name] = v;
    }
    Outcome out = built.run(in);
    COLT5_CHECK(out.output.defined(), r.kind, " returned no output");
    COLT5_CHECK(out.output.shape() == output_ref.shape(), "output shape ", out.output.shape(),
                " differs from the reference's ", output_ref.shape());
    COLT5_CHECK(upstream.shape() == output_ref.shape(), "upstream_grad's shape ", upstream.shape(),
                " differs from output's ", output_ref.shape());
    Tensor g = upstream.to(opts.dtype).to(opts.device);
    if (out.output.requires_grad()) sum(out.output * g).backward();

    // ---- errors ----
    r.errors.push_back({"output", relative_error(out.output, output_ref, "output")});
    for (const auto& [name, ref] : grad_inputs) {
      Tensor ours = in.at(name).grad();
      if (!ours.defined()) ours = zeros(ref.shape(), DType::Float64);
      r.errors.push_back({"grad.input." + name, relative_error(ours, ref, "grad.input." + name)});
    }
    for (const auto& [name, ref] : grad_params) {
      Tensor ours = named_params.at(name).grad();
      if (!ours.defined()) ours = zeros(ref.shape(), DType::Float64);
      r.errors.push_back({"grad.param." + name, relative_error(ours, ref, "grad.param." + name)});
    }
    if (indices_ref.defined()) {
      r.has_indices = true;
      COLT5_CHECK(out.indices.defined(), "the fixture has aux.indices but ", r.kind, " returns no indices");
      COLT5_CHECK(indices_ref.dtype() == DType::Int64, "aux.indices expected int64, got ",
                  dtype_name(indices_ref.dtype()));
      r.indices_ok = out.indices.shape() == indices_ref.shape() &&
                     out.indices.cpu().contiguous().to_vector<int64_t>() == indices_ref.to_vector<int64_t>();
    }
    r.ran = true;

    std::vector<std::string> bad;
    for (const auto& e : r.errors)
      if (!(e.err <= r.tol)) bad.push_back(e.name + " " + sci(e.err));
    if (r.has_indices && !r.indices_ok) bad.push_back("indices differ");
    r.ok = bad.empty();
    if (!r.ok) {
      std::ostringstream os;
      os << "above tolerance " << sci(r.tol) << ":";
      for (const auto& b : bad) os << ' ' << b;
      r.failure = os.str();
    }
  } catch (const std::exception& e) {
    r.ok = false;
    r.failure = e.what();
  }
  return r;
}

std::vector<std::string> list_fixtures(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  COLT5_CHECK(fs::is_directory(dir, ec), "golden parity: '", dir, "' is not a readable directory");
  std::vector<std::string> out;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string p = entry.path().string();
    if (entry.is_regular_file() && entry.path().extension() == ".safetensors") out.push_back(p);
  }
  COLT5_CHECK(!ec, "golden parity: cannot list '", dir, "': ", ec.message());
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<CaseResult> run_dir(const std::string& dir, const ParityOptions& opts) {
  std::vector<CaseResult> out;
  for (const auto& p : list_fixtures(dir)) out.push_back(run_case(p, opts));
  return out;
}

std::string format_result(const CaseResult& r) {
  std::ostringstream os;
  os << (r.ok ? "PASS " : "FAIL ") << r.name;
  for (const auto& e : r.errors) os << "  " << e.name << ' ' << sci(e.err);
  if (r.has_indices) os << "  indices " << (r.indices_ok ? "ok" : "DIFFER");
  if (!r.ok) os << "  -- " << r.failure;
  return os.str();
}

std::string golden_dir() {
  if (const char* env = std::getenv("COLT5_GOLDEN_DIR"); env && *env) return env;
  for (const char* d : {"tests/golden", "../tests/golden", "../../tests/golden"})
    if (std::filesystem::is_directory(d)) return d;
  return "tests/golden";
}

std::string golden_path(const std::string& name) { return golden_dir() + "/" + name + ".safetensors"; }

}  // namespace colt5::parity
