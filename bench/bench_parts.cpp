// Where a routed autoregressive attention layer's time goes: the layer of bench/workloads.cpp's
// LM step (dim 512, heavy window 128, 32 routed queries per window, 1024 keys/values per route,
// 2 routes, 8 x 64 heads) timed whole and piece by piece, forward and forward + backward.
//
//   build/bench/bench_parts [--device cuda] [--batch 4] [--n 8192]
//
// Without a timeline profiler on the GPU machine, the pieces are timed alone with the same
// inputs the layer gives them (bench/timing.h: CUDA events, warm-up, median); the sum of the
// pieces against the whole says what is left between them (host waits, small ops).
#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>

#include "autograd/ops.h"
#include "autograd/ops/coor_descent.h"
#include "autograd/ops/sort.h"
#include "bench/timing.h"
#include "core/backend.h"
#include "core/tensor.h"
#include "nn/routed.h"

using namespace colt5;

namespace {

void row(const std::string& name, Device dev, const std::function<void()>& f) {
  const bench::Timing t = bench::time_calls(dev, f, 2, 7);
  fmt::print("{:<58} {:>9.3f} ms  (min {:.3f}, max {:.3f})  peak {:.0f} MiB\n", name, t.median_ms, t.min_ms, t.max_ms,
             double(t.alloc_peak_bytes) / (1 << 20));
  std::fflush(stdout);  // a row as soon as it is measured, also into a file
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"bench_parts: the routed autoregressive attention layer's time, piece by piece"};
  std::string device = "auto";
  int64_t b = 4, n = 8192;
  app.add_option("--device", device, "cpu, cuda or auto");
  app.add_option("--batch", b, "batch size")->check(CLI::PositiveNumber);
  app.add_option("--n", n, "sequence length")->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);
  const Device dev = bench::device_from_flag(device);
  const int64_t dim = 512, w = 128, kq = 32, kkv = 1024, routes = 2;

  Generator gen(0);
  nn::ConditionalRoutedAutoregressiveAttentionOptions o;
  o.num_heavy_tokens_q = kq, o.num_heavy_tokens_kv = kkv, o.num_routed_kv = routes;
  o.light_window_size = w, o.light_heads = 8, o.light_dim_head = 64, o.heavy_heads = 8, o.heavy_dim_head = 64;
  auto layer = std::make_shared<nn::ConditionalRoutedAutoregressiveAttention>(dim, o, &gen);
  layer->to(dev);
  Generator data(1);
  const Tensor x = randn({b, n, dim}, DType::Float32, dev, &data).requires_grad_(true);
  const int64_t windows = n / w, qb = b * (windows - 1);

  fmt::print("routed AR attention layer, b{} n{} dim {}: {} query windows, device {}\n", b, n, dim, qb, dev.name());
  row("layer forward", dev, [&] { NoGradGuard g; layer->forward(x); });
  row("layer forward + backward", dev, [&] { sum(layer->forward(x)).backward(); });
  reset_sync_stats(dev);
  sum(layer->forward(x)).backward();
  const SyncStats waits = sync_stats(dev);
  fmt::print("host waits in one layer forward + backward: {} ({} device-to-host copies)\n", waits.host_waits,
             waits.device_to_host_copies);
  layer->heavy_enabled = false;
  row("layer forward + backward, heavy off (= light LocalMHA)", dev, [&] { sum(layer->forward(x)).backward(); });
  layer->heavy_enabled = true;

  // The kv router's problem: [qb * routes, N] scores under each window's prefix mask.
  const Tensor s = randn({qb * routes, n}, DType::Float32, dev, &data).requires_grad_(true);
  std::vector<bool> mask_v(size_t(qb * routes * n));
  for (int64_t r = 0; r < qb * routes; ++r)
    for (int64_t t = 0; t < n; ++t) mask_v[size_t(r * n + t)] = t / w < (r / routes) % (windows - 1) + 1;
  const Tensor mask = from_vector(mask_v, {qb * routes, n}, dev);
  const CoorDescentOptions co{.n_iters = 50, .eps = 1.0};
  row("coor_descent fwd [qb*2, N], 50 iterations", dev, [&] { NoGradGuard g; coor_descent(s, double(kkv), co, mask); });
  row("coor_descent fwd+bwd", dev, [&] { sum(coor_descent(s, double(kkv), co, mask)).backward(); });
  Tensor scores;
  {
    NoGradGuard g;
    scores = coor_descent(s, double(kkv), co, mask);
  }
  row("topk_indices_torch_order [qb*2, N] k 1024 (host)", dev, [&] { nn::topk_indices_torch_order(scores, kkv); });
  row("topk (library, device) [qb*2, N] k 1024", dev, [&] { NoGradGuard g; topk(scores, kkv); });

  // The heavy attention at the layer's shapes: queries [qb, kq, dim], keys/values [qb, 2, kkv, dim].
  const Tensor q = randn({qb, kq, dim}, DType::Float32, dev, &data).requires_grad_(true);
  const Tensor kv = randn({qb, routes, kkv, dim}, DType::Float32, dev, &data).requires_grad_(true);
  const Tensor kv_mask = ones({qb, routes, kkv}, DType::Bool, dev);
  row("heavy_attn fwd (projections + attention)", dev, [&] { NoGradGuard g; layer->heavy_attn->forward(q, kv, kv_mask); });
  row("heavy_attn fwd+bwd", dev, [&] { sum(layer->heavy_attn->forward(q, kv, kv_mask)).backward(); });
  const Tensor xs = randn({b, n, dim}, DType::Float32, dev, &data);
  const Tensor idx = randint(0, n, {b, (windows - 1) * routes * kkv}, DType::Int64, dev, &data);
  row("batched_gather of the routed keys/values", dev, [&] { NoGradGuard g; nn::batched_gather(xs, idx); });
  return 0;
}
