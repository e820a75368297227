// The workload list of colt5_bench (see workloads.h and bench/README.md).
//
// Each entry builds its module and inputs on the device it is given and returns the call to
// time. Shapes and options are the reference benchmark's (bench/reference_bench.py); where a
// number below differs from a module's default, it is one of the benchmark's fixed shapes (bench/README.md).
#include "bench/workloads.h"

#include "core/autocast.h"

#include <memory>

#include "autograd/ops.h"
#include "nn/attention.h"
#include "nn/layers.h"
#include "nn/local_attention.h"
#include "nn/optim.h"
#include "nn/routed.h"
#include "trainer.h"

namespace colt5::bench {

namespace {

constexpr DType F32 = DType::Float32;
constexpr DeviceType GPU = DeviceType::CUDA, CPU = DeviceType::CPU;

// Fixed random inputs: each workload draws its inputs in order from a Generator(1) of its own.
Tensor input(const Shape& shape, Device dev, Generator& gen) { return randn(shape, F32, dev, &gen); }

// ---- the passes --------------------------------------------------------------------------------

// fwd / fwdbwd of out = f(x) for x of x_shape, for a module (or nullptr) whose grads are dropped
// after each backward. `keep` holds whatever f captures by reference, alive with the call.
Prepared run_pass(bool backward, Device dev, const Shape& x_shape, std::shared_ptr<nn::Module> m,
                  std::function<Tensor(const Tensor&)> f) {
  Generator gen(1);
  Tensor x = input(x_shape, dev, gen);
  Prepared p;
  if (!backward) {
    p.call = [m, f, x] {
      NoGradGuard no_grad;
      f(x);
    };
    return p;
  }
  x.requires_grad_();
  Tensor g;
  {
    NoGradGuard no_grad;
    g = input(f(x).shape(), dev, gen);
  }
  p.call = [m, f, x, g] {
    f(x).backward(g);
    if (m) m->zero_grad();
    Tensor(x).zero_grad();
  };
  return p;
}

template <class M>
std::function<Prepared(Device)> module_pass(bool backward, Shape x_shape, std::function<std::shared_ptr<M>()> make) {
  return [=](Device dev) {
    std::shared_ptr<M> m = make();
    m->to(dev);
    return run_pass(backward, dev, x_shape, m, [m](const Tensor& x) { return m->forward(x); });
  };
}

// ---- coordinate descent ----------------------------------------------------------------------------

// 50 iterations at eps 1 (0.4.8's router), or 20 with eps-scaling (0.11.1's preset); k = 1024 * 9/8,
// the router's fetch_k_ratio times 1024 heavy tokens; an all-True mask, as the reference's Triton
// kernel needs one.
std::function<Prepared(Device)> coor_descent_pass(bool backward, int64_t rows, int64_t n, bool eps_scaling) {
  return [=](Device dev) {
    CoorDescentOptions o;
    if (eps_scaling) {
      o.n_iters = 20, o.eps = 0.03, o.eps_init = 4.0, o.eps_decay = 0.7;
    } else {
      o.n_iters = 50, o.eps = 1.0;
    }
    const Tensor mask = full({rows, n}, 1.0, DType::Bool, dev);
    return run_pass(backward, dev, {rows, n}, nullptr,
                    [o, mask](const Tensor& s) { return coor_descent(s, 1152.0, o, mask); });
  };
}

// ---- heavy attention core ------------------------------------------------------------------------
// softmax(q k^T / sqrt(d)) v at b2 h8, 1024 routed queries over 1024 routed keys + the null key.
Prepared heavy_attention_fwdbwd(Device dev) {
  Generator gen(1);
  Tensor q = input({2, 8, 1024, 64}, dev, gen).requires_grad_();
  Tensor k = input({2, 8, 1025, 64}, dev, gen).requires_grad_();
  Tensor v = input({2, 8, 1025, 64}, dev, gen).requires_grad_();
  Tensor g = input({2, 8, 1024, 64}, dev, gen);
  Prepared p;
  AttentionInputs in;  // the fused op (autograd/ops/attention.h), as nn::Attention calls it
  in.q = q, in.k = k, in.v = v, in.scale = 1.0 / 8.0;
  p.call = [in, q, k, v, g] {
    attention(in).backward(g);
    for (Tensor t : {q, k, v}) t.zero_grad();
  };
  return p;
}

// ---- modules ----------------------------------------------------------------------------------------

// The light branch of the block: LocalMHA over windows of 64, looking one window back and one forward.
std::shared_ptr<nn::LocalMHA> local_mha(int64_t dim, int64_t heads) {
  nn::LocalMHAOptions o;
  o.dim = dim, o.dim_head = 64, o.heads = heads, o.window_size = 64;
  o.prenorm = true, o.causal = false, o.look_backward = 1, o.look_forward = 1, o.exact_windowsize = true;
  Generator gen(0);
  return std::make_shared<nn::LocalMHA>(o, &gen);
}

std::shared_ptr<nn::ConditionalRoutedAttention> routed_attention() {
  nn::ConditionalRoutedAttentionOptions o;
  o.num_heavy_tokens_q = 1024, o.num_heavy_tokens_kv = 1024;
  o.light_dim_head = 64, o.light_heads = 8, o.light_window_size = 128, o.heavy_dim_head = 64, o.heavy_heads = 8;
  Generator gen(0);
  return std::make_shared<nn::ConditionalRoutedAttention>(512, o, &gen);
}

std::shared_ptr<nn::ConditionalRoutedFeedForward> routed_ff() {
  nn::ConditionalRoutedFeedForwardOptions o;
  o.num_heavy_tokens = 1024, o.light_ff_mult = 0.5, o.heavy_ff_mult = 4;
  Generator gen(0);
  return std::make_shared<nn::ConditionalRoutedFeedForward>(512, o, &gen);
}

// The benchmark's block: dim 512 with 1024 heavy tokens each (GPU), or dim 256 with 256 (CPU).
std::shared_ptr<nn::ConditionalRoutedTransformerBlock> block(int64_t dim, int64_t heavy, int64_t heads) {
  nn::ConditionalRoutedTransformerBlockOptions o;
  o.num_heavy_attn_tokens_q = heavy, o.num_heavy_attn_tokens_kv = heavy, o.num_heavy_ff_tokens = heavy;
  o.light_dim_head = 64, o.light_heads = heads, o.light_window_size = 128;
  o.heavy_dim_head = 64, o.heavy_heads = heads, o.light_ff_mult = 0.5, o.heavy_ff_mult = 4;
  Generator gen(0);
  return std::make_shared<nn::ConditionalRoutedTransformerBlock>(dim, o, &gen);
}

// ---- the language-model step ---------------------------------------------------------------------
// Token embedding (V = 256, N(0, 1) as torch.nn.Embedding), `depth` x [routed autoregressive
// attention + FeedForward(dim, 4), each residual], a Linear head with bias; cross entropy of the
// next byte at every position but the last; AdamW(lr 3e-4).
struct LMShape {
  int64_t dim, depth, heavy_q, heavy_kv, window, heads, dim_head;
};

class BenchLM : public nn::Module {
public:
  BenchLM(const LMShape& s, Generator* gen) {
    token_emb = register_parameter("token_emb", randn({256, s.dim}, F32, kCPU, gen));
    for (int64_t i = 0; i < s.depth; ++i) {
      nn::ConditionalRoutedAutoregressiveAttentionOptions a;
      a.num_heavy_tokens_q = s.heavy_q, a.num_heavy_tokens_kv = s.heavy_kv, a.num_routed_kv = 2;
      a.light_window_size = s.window, a.light_heads = s.heads, a.light_dim_head = s.dim_head;
      a.heavy_heads = s.heads, a.heavy_dim_head = s.dim_head;
      const std::string p = "layers." + std::to_string(i) + ".";
      attn.push_back(register_module(p + "attn", std::make_shared<nn::ConditionalRoutedAutoregressiveAttention>(s.dim, a, gen)));
      ff.push_back(register_module(p + "ff", std::make_shared<nn::FeedForward>(s.dim, nn::FeedForwardOptions{4.0}, gen)));
    }
    head = register_module("head", std::make_shared<nn::Linear>(s.dim, 256, true, gen));
  }

  Tensor loss(const Tensor& tokens) const {
    Tensor h = embedding(token_emb, tokens);
    for (size_t i = 0; i < attn.size(); ++i) {
      h = attn[i]->forward(h) + h;
      h = ff[i]->forward(h) + h;
    }
    const int64_t n = tokens.size(1);
    const Tensor logits = head->forward(h).narrow(1, 0, n - 1).reshape({-1, 256});
    return cross_entropy(logits, tokens.narrow(1, 1, n - 1).reshape({-1}));
  }

  Tensor token_emb;
  std::vector<std::shared_ptr<nn::ConditionalRoutedAutoregressiveAttention>> attn;
  std::vector<std::shared_ptr<nn::FeedForward>> ff;
  std::shared_ptr<nn::Linear> head;
};

std::function<Prepared(Device)> lm_step(int64_t b, int64_t n, LMShape s) {
  return [=](Device dev) {
    Generator gen(0);
    auto m = std::make_shared<BenchLM>(s, &gen);
    m->to(dev);
    Generator data(1);
    const Tensor tokens = randint(0, 256, {b, n}, DType::Int64, dev, &data);
    auto opt = std::make_shared<nn::AdamW>(m->parameters(), nn::AdamWOptions{.lr = 3e-4});
    Prepared p;
    p.call = [m, opt, tokens] {
      m->loss(tokens).backward();
      opt->step();
      opt->zero_grad();
    };
    p.tokens_per_call = b * n;
    if (n >= 8192) {  // seconds per step: one warm-up is enough to reach the steady state
      p.warmup = 1;
      p.note = "1 warm-up step";
    }
    return p;
  };
}

// ---- the main job's step ---------------------------------------------------------------------------
// examples/train's default run on this device: Trainer::train_step of the recall preset (the batch
// is made on the host and copied, the loss is read back: both are part of the program's step);
// with `graph`, the step replayed from a CUDA graph (captured after two warm-up steps, which the
// benchmark's own warm-up covers).
// The same workload with its matrix products under autocast (core/autocast.h): bfloat16
// operands, float32 accumulation, everything else float32. The reference's rows of the same name
// run under torch.autocast(bfloat16).
std::function<Prepared(Device)> bf16_products(std::function<Prepared(Device)> f) {
  return [=](Device d) {
    Prepared p = f(d);
    p.call = [call = p.call] {
      AutocastGuard guard(DType::BFloat16);
      call();
    };
    p.note += p.note.empty() ? "autocast bf16 products" : ", autocast bf16 products";
    return p;
  };
}

std::function<Prepared(Device)> train_step(bool gpu, bool graph = false, const char* precision = "fp32") {
  return [=](Device) {
    train::TrainConfig cfg = train::preset("recall", gpu);
    cfg.device = gpu ? "cuda" : "cpu";
    cfg.precision = precision;
    auto t = std::make_shared<train::Trainer>(cfg);
    t->set_cuda_graph(graph);
    Prepared p;
    p.call = [t] { t->train_step(); };
    if (graph) {
      p.warmup = 5;  // two ordinary steps, the capture, two replays
      p.note = "CUDA graph";
    }
    p.tokens_per_call = cfg.batch_size * cfg.grad_accum * cfg.seq_len;
    return p;
  };
}

std::vector<Workload> make_list() {
  std::vector<Workload> w;
  auto add = [&](std::string name, DeviceType dev, bool quick, std::string what, std::function<Prepared(Device)> f) {
    w.push_back({std::move(name), dev, quick, std::move(what), std::move(f)});
  };
  // GPU
  for (bool eps : {false, true})
    for (auto [rows, n] : {std::pair<int64_t, int64_t>{2, 8192}, {4, 32768}})
      for (bool bwd : {false, true}) {
        const std::string shape = std::to_string(rows) + "x" + std::to_string(n);
        add(std::string(eps ? "coor_descent_eps/" : "coor_descent/") + (bwd ? "fwdbwd/" : "fwd/") + shape, GPU, n == 8192,
            eps ? "coor_descent, 20 iterations, eps 0.03 <- 4 (decay 0.7), k 1152" : "coor_descent, 50 iterations, eps 1, k 1152",
            coor_descent_pass(bwd, rows, n, eps));
      }
  add("heavy_attention/fwdbwd/b2h8q1024kv1025d64", GPU, true, "softmax(q k^T / 8) v, no mask", heavy_attention_fwdbwd);
  for (int64_t n : {8192, 32768}) {
    const std::string s = "b2n" + std::to_string(n);
    const bool q = n == 8192;
    add("local_mha/fwdbwd/" + s, GPU, q, "LocalMHA dim 512, 8x64 heads, window 64, look 1/1, exact",
        module_pass<nn::LocalMHA>(true, {2, n, 512}, [] { return local_mha(512, 8); }));
    add("routed_attention/fwdbwd/" + s, GPU, q, "ConditionalRoutedAttention 1024 q / 1024 kv",
        module_pass<nn::ConditionalRoutedAttention>(true, {2, n, 512}, routed_attention));
    add("routed_ff/fwdbwd/" + s, GPU, q, "ConditionalRoutedFeedForward 1024 tokens, light 0.5, heavy 4",
        module_pass<nn::ConditionalRoutedFeedForward>(true, {2, n, 512}, routed_ff));
    for (bool bwd : {false, true})
      add(std::string("block/") + (bwd ? "fwdbwd/" : "fwd/") + s, GPU, q, "ConditionalRoutedTransformerBlock dim 512",
          module_pass<nn::ConditionalRoutedTransformerBlock>(bwd, {2, n, 512}, [] { return block(512, 1024, 8); }));
  }
  const LMShape lm_gpu{512, 4, 32, 1024, 128, 8, 64};
  add("lm_step/b4n2048", GPU, true, "LM step: 4 x routed AR attention + FF, dim 512", lm_step(4, 2048, lm_gpu));
  add("lm_step/b4n8192", GPU, false, "LM step: 4 x routed AR attention + FF, dim 512", lm_step(4, 8192, lm_gpu));
  add("train_step/gpu-preset", GPU, true, "examples/train step, GPU preset (recall, b64 n256 dim 128)", train_step(true));
  add("train_step/gpu-preset-graph", GPU, true, "the same step replayed from a CUDA graph (train's default)",
      train_step(true, true));
  add("train_step/gpu-preset-graph-bf16", GPU, true, "the graphed step with --precision bf16",
      train_step(true, true, "bf16"));
  add("lm_step/b4n2048-bf16", GPU, true, "LM step b4n2048, matrix products in bf16 (autocast)",
      bf16_products(lm_step(4, 2048, lm_gpu)));
  add("block/fwdbwd/b2n8192-bf16", GPU, true, "the block b2n8192 fwd+bwd, matrix products in bf16 (autocast)",
      bf16_products(module_pass<nn::ConditionalRoutedTransformerBlock>(true, {2, 8192, 512},
                                                                        [] { return block(512, 1024, 8); })));
  // CPU
  for (bool eps : {false, true})
    for (bool bwd : {false, true})
      add(std::string(eps ? "coor_descent_eps/" : "coor_descent/") + (bwd ? "fwdbwd/" : "fwd/") + "2x4096", CPU, true,
          eps ? "coor_descent, 20 iterations, eps-scaling, k 1152" : "coor_descent, 50 iterations, eps 1, k 1152",
          coor_descent_pass(bwd, 2, 4096, eps));
  for (bool bwd : {false, true})
    add(std::string("block/") + (bwd ? "fwdbwd/" : "fwd/") + "b1n2048d256", CPU, true,
        "ConditionalRoutedTransformerBlock dim 256, 256 heavy tokens, 4x64 heads",
        module_pass<nn::ConditionalRoutedTransformerBlock>(bwd, {1, 2048, 256}, [] { return block(256, 256, 4); }));
  add("local_mha/fwdbwd/b1n2048d256", CPU, true, "LocalMHA dim 256, 4x64 heads, window 64",
      module_pass<nn::LocalMHA>(true, {1, 2048, 256}, [] { return local_mha(256, 4); }));
  add("lm_step/b4n512d128", CPU, true, "LM step: 2 x routed AR attention + FF, dim 128",
      lm_step(4, 512, LMShape{128, 2, 16, 64, 64, 4, 32}));
  add("train_step/cpu-preset", CPU, true, "examples/train step, CPU preset (recall, b32 n64 dim 64)", train_step(false));
  return w;
}

}  // namespace

const std::vector<Workload>& workloads() {
  static const std::vector<Workload> list = make_list();
  return list;
}

}  // namespace colt5::bench
