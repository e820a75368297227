// routing_walkthrough: one small ConditionalRoutedAttention, taken apart step by step.
//
// CoLT5 splits every layer into a light branch that every token goes through (here: local
// attention over a small window) and a heavy branch (here: full attention) that only a few
// tokens go through. Which tokens go heavy is decided by a router: a learned routing token
// scores every token, coordinate descent turns the scores into a soft top-k, and the k best
// tokens are picked. The heavy results are scaled by their scores and put back at the picked
// positions; the two branches are summed.
//
// This program rebuilds that forward pass from the module's parts and public ops, printing the
// intermediate values, and checks at each stage that it agrees with the library:
//   1. router scores s = routing_token . x                    (nn/routers.cpp, Router::prepare)
//   2. coordinate descent, iteration by iteration             (autograd/ops/coor_descent.h)
//   3. the picked query and key / value tokens                (CoordinateDescentRouter::forward)
//   4. light branch, heavy branch scattered back, their sum   (ConditionalRoutedAttention::forward)
// docs/routing.md explains the math. Run: build/examples/routing_walkthrough
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "autograd/ops.h"
#include "core/format.h"
#include "nn/routed.h"

using namespace colt5;

namespace {

// The values of a 1-D tensor on one line, 3 decimals each.
std::string row(const Tensor& t) {
  std::string out;
  for (double v : t.contiguous().to(DType::Float64).to_vector<double>()) out += fmt::format("{:7.3f}", v);
  return out;
}

// Integer values (token indices) on one line; `width` 7 lines them up with row().
std::string ints(const Tensor& t, int width = 0) {
  std::string out;
  for (int64_t v : t.contiguous().to_vector<int64_t>()) out += fmt::format(" {:>{}}", v, width > 0 ? width - 1 : 0);
  return out;
}

double max_abs_diff(const Tensor& a, const Tensor& b) { return amax(abs(a - b).flatten(), {0}).item_double(); }

void heading(const char* title) { fmt::print("\n== {} ==\n", title); }

}  // namespace

int main(int argc, char** argv) {
  // No options: the walkthrough always shows the same small example.
  const bool help = argc == 2 && (std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h");
  if (argc > 1) {
    std::fprintf(help ? stdout : stderr, "%susage: routing_walkthrough\n  prints one ConditionalRoutedAttention "
                 "forward pass step by step (docs/routing.md); it takes no options\n",
                 help ? "" : fmt::format("routing_walkthrough: unexpected argument '{}'\n", argv[1]).c_str());
    return help ? 0 : 2;
  }
  try {
    NoGradGuard no_grad;  // forward values only
    const int64_t dim = 8, n = 12, kq = 3, kkv = 4;

    // ---- the module ----
    nn::ConditionalRoutedAttentionOptions opts;
    opts.num_heavy_tokens_q = kq;    // queries that get full attention
    opts.num_heavy_tokens_kv = kkv;  // keys / values they attend to
    opts.light_window_size = 4;      // the light LocalMHA uses windows of 4 / 2 = 2 tokens
    opts.light_heads = 2;
    opts.light_dim_head = 4;
    opts.heavy_heads = 2;
    opts.heavy_dim_head = 4;
    Generator gen(7);
    nn::ConditionalRoutedAttention attn(dim, opts, &gen);
    attn.to(DType::Float64);
    const Tensor x = randn({1, n, dim}, DType::Float64, kCPU, &gen);  // [b = 1, n, dim]

    fmt::print("ConditionalRoutedAttention(dim {}, n {}, light window {}, {} heavy queries, {} heavy keys/values)\n",
               dim, n, opts.light_window_size, kq, kkv);
    fmt::print("Every token goes through the light branch; the routers pick {} of the {} tokens as heavy\n"
               "queries and {} as heavy keys/values.\n", kq, n, kkv);

    // ---- 1. router scores ----
    heading("1. router scores s = routing_token . x");
    // The router's own s (Router::prepare) is protected: recompute it with the same public op.
    const Tensor s = matmul(attn.q_router->routing_token, x.transpose(1, 2)).reshape({1, n});  // [1, n]
    fmt::print("One learned vector (q_router.routing_token, [1, {}]) is dotted with every token:\n", dim);
    fmt::print("token   {}\n", ints(arange(n), 7));
    fmt::print("s       {}\n", row(s.select(0, 0)));

    // ---- 2. coordinate descent ----
    heading("2. coordinate descent: a soft top-k of s");
    const auto& ro = static_cast<const nn::CoordinateDescentRouter&>(*attn.q_router).options();
    const double k = std::min(double(kq) * ro.fetch_k_ratio, double(n));  // fetch a little more than kq
    const double eps = ro.eps;
    fmt::print("k = num_heavy_tokens_q * fetch_k_ratio = {} * {} = {}, eps = {}, {} iterations\n", kq,
               ro.fetch_k_ratio, k, eps, ro.n_iters);
    fmt::print("b_0 = -s;  a_t = eps (log k - logsumexp((s + b_(t-1)) / eps));  b_t = -relu(s + a_t)\n"
               "y_t = exp((s + a_t + b_t) / eps) = exp(min(s + a_t, 0) / eps): tokens with s_j > -a_t get 1,\n"
               "the others decay with their distance below the threshold -a_t; sum(y) moves towards k.\n");
    // The iterations written out with tensor ops (the library runs them in one fused kernel).
    Tensor b = -s;
    Tensor y_manual;
    for (int64_t t = 1; t <= ro.n_iters; ++t) {
      const Tensor a = eps * (std::log(k) - logsumexp((s + b) / eps, -1, true));  // [1, 1]
      b = -relu(s + a);
      y_manual = exp((s + a + b) / eps);
      if (t == 1 || t == 2 || t == 3 || t == 5 || t == 10 || t == ro.n_iters) {
        std::string pushed;  // the tokens above the threshold, where b_t < 0 cuts them down
        const std::vector<double> bv = b.contiguous().to_vector<double>();
        for (int64_t j = 0; j < n; ++j)
          if (bv[size_t(j)] < 0) pushed += fmt::format(" {}:{:.2f}", j, bv[size_t(j)]);
        fmt::print("t={:<2} a_t = {:7.3f}  sum(y_t) = {:.3f}  b_t < 0 at{}\n", t, a.item_double(),
                   sum(y_manual).item_double(), pushed.empty() ? " (none)" : pushed);
        fmt::print("      y_t {}\n", row(y_manual.select(0, 0)));
      }
    }
    // With eps = 1 the output is still soft; with eps-scaling down to a small eps it sharpens
    // towards a hard 0/1 top-k (the router itself uses eps = 1, no schedule).
    const Tensor y_lib = coor_descent(s, k, {.n_iters = ro.n_iters, .eps = eps});
    fmt::print("library coor_descent(s, k, n_iters {}, eps {}): max |difference| to the loop above = {:.1e}\n",
               ro.n_iters, eps, max_abs_diff(y_lib, y_manual));
    const Tensor y_sharp = coor_descent(s, k, {.n_iters = ro.n_iters, .eps = 0.05, .eps_init = 1.0, .eps_decay = 0.9});
    fmt::print("for comparison, eps 1 -> 0.05 (eps_init 1, eps_decay 0.9):\n          {}\n", row(y_sharp.select(0, 0)));

    // ---- 3. the picked tokens ----
    heading("3. the picked tokens (top-k of y)");
    nn::RouterOutput q = attn.q_router->forward(x, kq);    // indices [1, kq], scores [1, kq]
    nn::RouterOutput kv = attn.kv_router->forward(x, kkv);  // the key/value router has its own routing token
    fmt::print("heavy queries     {}   (top {} of y above:{})\n", ints(q.indices), kq,
               ints(nn::route_topk_indices(y_lib, kq)));
    fmt::print("heavy keys/values {}\n", ints(kv.indices));
    fmt::print("query scores      {}   (straight-through: value 1, gradient of y)\n", row(q.scores.select(0, 0)));

    // ---- 4. light and heavy branches ----
    heading("4. light branch + heavy branch");
    PrintOptions po;
    po.precision = 3;
    const int64_t shown = 4;
    fmt::print("(first {} of the {} features of each token shown)\n", shown, dim);
    const Tensor light = attn.light_attn->forward(x);  // local attention, every token
    fmt::print("light = LocalMHA(x), every token sees its window and the neighbouring ones:\n{}\n",
               format_tensor(light.select(0, 0).narrow(1, 0, shown), po));

    const Tensor routed_q = nn::batched_gather(x, q.indices);    // [1, kq, dim]
    const Tensor routed_kv = nn::batched_gather(x, kv.indices);  // [1, kkv, dim]
    // Full attention of the kq queries over the kkv keys/values (plus a learned null key/value);
    // the values are multiplied by the key/value scores, the result by the query scores.
    const Tensor o = attn.heavy_attn->forward(routed_q, routed_kv, Tensor(), kv.scores) * q.scores.unsqueeze(-1);
    fmt::print("heavy attention output of the {} routed queries:\n{}\n", kq, format_tensor(o.select(0, 0).narrow(1, 0, shown), po));
    // route_back: start from the learned null query token at every position, overwrite the
    // picked positions with the heavy outputs.
    const Tensor source = attn.null_q_token.reshape({1, 1, dim}).expand({1, n, dim});
    const Tensor heavy = attn.q_router->route_back(source, o, q.indices);
    fmt::print("heavy scattered back (rows{}; every other row is null_q_token):\n{}\n", ints(q.indices),
               format_tensor(heavy.select(0, 0).narrow(1, 0, shown), po));
    const Tensor out = light + heavy;
    fmt::print("out = light + heavy:\n{}\n", format_tensor(out.select(0, 0).narrow(1, 0, shown), po));

    heading("check");
    const Tensor expected = attn.forward(x);
    const double diff = max_abs_diff(out, expected);
    fmt::print("max |(light + heavy) - ConditionalRoutedAttention::forward(x)| = {:.1e}\n", diff);
    const double diff_cd = max_abs_diff(y_lib, y_manual);
    if (diff > 1e-12 || diff_cd > 1e-12) {
      fmt::print("MISMATCH\n");
      return 1;
    }
    fmt::print("OK\n");
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "routing_walkthrough: %s\n", e.what());
    return 1;
  }
}
