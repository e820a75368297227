// Host waits on the GPU: the deferred index / target checks (cuda/context.h, DeferredChecks)
// still report a bad index with the op's name, and the forward + backward of the routed models
// never make the host wait for the GPU (core/backend.h: sync_stats).
#include <doctest/doctest.h>

#include <cmath>
#include <cstdlib>
#include <memory>
#include <string>

#include "autograd/ops.h"
#include "nn/models.h"
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
    Generator gen(3);
    std::unique_ptr<nn::Model> model = nn::make_model(small_config(kind), &gen);
    model->to(gpu());
    const int64_t b = 4, n = 64;
    const Tensor tokens = randint(0, 32, {b, n}, DType::Int64, gpu(), &gen);
    const Tensor targets = kind == "lm" ? randint(0, 32, {b * n}, DType::Int64, gpu(), &gen)
                                        : randint(0, 5, {b}, DType::Int64, gpu(), &gen);
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
