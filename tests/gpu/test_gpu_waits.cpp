// Host waits on the GPU: the deferred index / target checks (cuda/context.h, DeferredChecks)
// still report a bad index with the op's name; the forward + backward of the routed models, and
// a whole training step up to reading its loss, never make the host wait for the GPU
// (core/backend.h: sync_stats); CUDA graphs (core/graph.h) replay what they captured, keep their
// memory to themselves, report a bad index after a replay, and refuse what cannot be captured.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdlib>
#include <memory>
#include <string>

#include "autograd/ops.h"
#include "core/graph.h"
#include "core/ops/copy.h"
#include "nn/models.h"
#include "nn/optim.h"
#include "tests/gpu/gpu.h"

using namespace colt5;
using colt5::gputest::gpu;
using doctest::Contains;

namespace {

bool sync_mode() {  // COLT5_CUDA_SYNC=1 checks at every op: the deferral is off
  const char* v = std::getenv("COLT5_CUDA_SYNC");
  return v && v[0] && v[0] != '0';
}

nn::ModelConfig small_config(const std::string& kind) {
  nn::ModelConfig c;
  c.kind = kind;
  c.vocab_size = 32, c.max_seq_len = 64, c.dim = 32, c.depth = 2;
  c.light_window_size = 8, c.heavy_window_size = 8, c.num_heavy_tokens_q = 8, c.num_heavy_tokens_kv = 12;
  c.num_heavy_ff_tokens = 6, c.ff_window_size = 8;
  c.light_heads = 2, c.light_dim_head = 16, c.heavy_heads = 2, c.heavy_dim_head = 16;
  c.light_rotary = true;
  if (kind == "encoder") c.num_classes = 5;
  return c;
}

// A small model of `kind` on the GPU and a batch (4 x 64 tokens, its targets) drawn after it
// from Generator(seed), on `data`.
struct SmallRun {
  std::unique_ptr<nn::Model> model;
  Tensor tokens, targets;
};
SmallRun small_run(const std::string& kind, uint64_t seed, Device data) {
  Generator gen(seed);
  SmallRun r;
  r.model = nn::make_model(small_config(kind), &gen);
  r.model->to(gpu());
  const int64_t b = 4, n = 64;
  r.tokens = randint(0, 32, {b, n}, DType::Int64, data, &gen);
  r.targets = kind == "lm" ? randint(0, 32, {b * n}, DType::Int64, data, &gen) : randint(0, 5, {b}, DType::Int64, data, &gen);
  return r;
}

}  // namespace

TEST_CASE("gpu: a bad index or target is reported at the next wait with the op's name; the device stays usable") {
  COLT5_REQUIRE_GPU();
  if (sync_mode()) {
    MESSAGE("skipped: COLT5_CUDA_SYNC=1 reports at the op itself (the CPU-side tests cover the messages)");
    return;
  }
  const Tensor x = randn({2, 3}, DType::Float32, gpu());
  const Tensor bad = from_vector<int64_t>({0, 3, 1, 2}, {2, 2}, gpu());
  const Tensor good = from_vector<int64_t>({0, 2, 1, 1}, {2, 2}, gpu());
  reset_sync_stats(gpu());
  Tensor out = gather(x, 1, bad);  // queued; the verdict waits for the next host wait
  CHECK(sync_stats(gpu()).host_waits == 0);
  CHECK_THROWS_WITH_AS(out.cpu(), Contains("gather: argument 'index' holds the index 3, expected a value in [0, 3)"),
                       Error);
  // Reported once; later work runs normally.
  CHECK(gather(x, 1, good).cpu().to_vector<float>() == gather(x.cpu(), 1, good.cpu()).to_vector<float>());

  // Several ops later, reported by synchronize(), naming the op that had the bad index.
  Tensor e = index_select(x, 0, from_vector<int64_t>({1, -1}, {2}, gpu()));
  e = exp(e) + 1.0;
  CHECK_THROWS_WITH_AS(synchronize(gpu()), Contains("index_select: argument 'index' holds the index -1"), Error);

  // A bad target of cross_entropy, reported when the loss is read (the trainer's one wait).
  const Tensor logits = randn({3, 4}, DType::Float32, gpu());
  const Tensor targets = from_vector<int64_t>({1, 7, 0}, {3}, gpu());
  const Tensor loss = cross_entropy(logits, targets);
  CHECK_THROWS_WITH_AS(loss.item_double(), Contains("cross_entropy: argument 'targets' expected class indices in [0, 4)"),
                       Error);
  CHECK(std::isfinite(cross_entropy(logits, from_vector<int64_t>({1, 2, 0}, {3}, gpu())).item_double()));
}

TEST_CASE("gpu: forward + backward of the routed encoder and of the LM make no host wait") {
  COLT5_REQUIRE_GPU();
  if (sync_mode()) {
    MESSAGE("skipped: COLT5_CUDA_SYNC=1 waits after every checked launch by design");
    return;
  }
  for (const std::string kind : {"encoder", "lm"}) {
    CAPTURE(kind);
    const SmallRun run = small_run(kind, 3, gpu());
    const std::unique_ptr<nn::Model>& model = run.model;
    const Tensor &tokens = run.tokens, &targets = run.targets;
    auto step = [&] {
      const Tensor logits = model->forward(tokens);
      cross_entropy(logits.reshape({-1, logits.size(-1)}), targets).backward();
    };
    step();  // first call: one-time set-up (check slots, cuBLAS workspaces)
    synchronize(gpu());
    reset_sync_stats(gpu());
    step();
    const SyncStats s = sync_stats(gpu());
    CHECK(s.host_waits == 0);
    CHECK(s.device_to_host_copies == 0);
    synchronize(gpu());  // and no deferred check was raised
    CHECK(sync_stats(gpu()).host_waits == 1);
  }
}

TEST_CASE("gpu: a whole training step (forward, backward, clipping, AdamW) waits only to read its loss") {
  COLT5_REQUIRE_GPU();
  if (sync_mode()) {
    MESSAGE("skipped: COLT5_CUDA_SYNC=1 waits after every checked launch by design");
    return;
  }
  for (const std::string kind : {"encoder", "lm"}) {
    CAPTURE(kind);
    const SmallRun run = small_run(kind, 4, kCPU);  // the batch on the host: each step copies it
    const std::unique_ptr<nn::Model>& model = run.model;
    const Tensor &tokens_host = run.tokens, &targets_host = run.targets;
    nn::AdamW opt(nn::param_groups_for(*model, 0.01), nn::AdamWOptions{1e-3});
    auto step = [&](double lr) {
      opt.set_lr(lr);
      const Tensor tokens = tokens_host.to(gpu()), targets = targets_host.to(gpu());  // staged: no wait
      const Tensor logits = model->forward(tokens);
      const Tensor loss = cross_entropy(logits.reshape({-1, logits.size(-1)}), targets);
      loss.backward();
      const Tensor gnorm = nn::clip_grad_norm_(model->parameters(), 0.5);
      opt.step();
      opt.zero_grad();
      return stack({loss.detach().to(DType::Float64).reshape({1}), gnorm.reshape({1})}, 0);
    };
    step(1e-3);
    synchronize(gpu());
    reset_sync_stats(gpu());
    const Tensor stats = step(5e-4);  // a new learning rate too
    CHECK(sync_stats(gpu()).host_waits == 0);
    const std::vector<double> v = stats.cpu().to_vector<double>();
    CHECK(sync_stats(gpu()).host_waits == 1);
    CHECK(std::isfinite(v[0]));
    CHECK(v[1] > 0);
  }
}

TEST_CASE("gpu: a captured graph replays its kernels on new inputs, and other work never gets its memory") {
  COLT5_REQUIRE_GPU();
  Tensor x = from_vector<float>({1, 2, 3, 4}, {4}, gpu());
  Tensor y;
  auto g = capture_graph(gpu(), [&] { y = exp(x * 2.0) + 1.0; });
  CHECK(g->nodes() >= 2);
  // Eager work after the capture: its blocks must not be the graph's.
  Tensor other = full({1 << 16}, 7.0, DType::Float32, gpu());
  for (int r = 0; r < 3; ++r) {
    const std::vector<float> in = {float(r), -1.f, 0.5f, 2.f};
    Tensor host = from_vector<float>(in, {4});
    ops::copy_(x, host);
    g->replay();
    const std::vector<float> got = y.cpu().to_vector<float>();
    for (size_t i = 0; i < in.size(); ++i) CHECK(got[i] == (exp(host * 2.0) + 1.0).to_vector<float>()[i]);
    Tensor scratch = full({1 << 16}, -3.0, DType::Float32, gpu());  // eager allocations between replays
    CHECK(sum(other).item_double() == 7.0 * (1 << 16));
  }
  // The graph's tensors outlive it (their blocks become ordinary ones).
  g.reset();
  CHECK(y.cpu().numel() == 4);
}

TEST_CASE("gpu: what cannot be captured is refused with a message, and the device stays usable") {
  COLT5_REQUIRE_GPU();
  const Tensor x = randn({8}, DType::Float32, gpu());
  CHECK_THROWS_WITH_AS(capture_graph(gpu(), [&] { (void)sum(x).item_double(); }),
                       Contains("capture_graph: cuda:0: the host cannot read device memory while a CUDA graph"), Error);
  CHECK_THROWS_WITH_AS(capture_graph(gpu(), [&] { (void)from_vector<float>({1, 2}, {2}, gpu()); }),
                       Contains("a copy from host memory cannot be part of a CUDA graph"), Error);
  CHECK_THROWS_WITH_AS(capture_graph(gpu(), [&] { synchronize(gpu()); }), Contains("the host cannot wait"), Error);
  CHECK_THROWS_WITH_AS(capture_graph(kCPU, [] {}), Contains("expected a CUDA device"), Error);
  CHECK_THROWS_WITH_AS(capture_graph(gpu(), [&] { (void)capture_graph(gpu(), [] {}); }),
                       Contains("captures do not nest"), Error);
  // Work after a failed capture runs normally.
  CHECK(sum(x * 0.0 + 1.0).item_double() == 8.0);
}

TEST_CASE("gpu: a bad index inside a graph is reported at the wait after the replay, naming the op") {
  COLT5_REQUIRE_GPU();
  if (sync_mode()) {
    MESSAGE("skipped: COLT5_CUDA_SYNC=1 cannot capture (it waits after every checked launch)");
    return;
  }
  const Tensor x = randn({2, 3}, DType::Float32, gpu());
  Tensor index = from_vector<int64_t>({0, 2, 1, 1}, {2, 2}, gpu());
  Tensor out;
  auto g = capture_graph(gpu(), [&] { out = gather(x, 1, index); });
  g->replay();
  CHECK(out.cpu().to_vector<float>() == gather(x.cpu(), 1, index.cpu()).to_vector<float>());
  ops::copy_(index, from_vector<int64_t>({0, 3, 1, 2}, {2, 2}));
  g->replay();
  CHECK_THROWS_WITH_AS(synchronize(gpu()), Contains("gather: argument 'index' holds the index 3, expected a value in [0, 3)"),
                       Error);
  ops::copy_(index, from_vector<int64_t>({2, 2, 0, 0}, {2, 2}));
  g->replay();
  CHECK_NOTHROW(synchronize(gpu()));  // each replay clears the verdicts it reads
  CHECK(out.cpu().to_vector<float>() == gather(x.cpu(), 1, index.cpu()).to_vector<float>());
}
