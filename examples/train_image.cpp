// train_image: the routed ViT (nn/image.h, CoLT5-attention 0.11.1's ConditionalRoutedViT) on a
// small image task made in code, and what its heavy branches contribute.
//
// The task, "which quadrant holds the odd patch": a 1-channel image of S x S pixels with noise
// N(0, noise^2); in each of its four quadrants one square of s x s pixels is drawn at a random
// place, three of them solid (+1) and one a checkerboard (+2 / 0). The label is the quadrant
// (0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right) of the checkerboard: chance 25%.
// Both kinds add the same brightness on average (1 per pixel), so only texture tells them apart.
// Every batch is a function of (seed, step), as in train.
//
// The model cuts the image into patches, routes within windows of the patch map, pools the mean
// and classifies. After training it is evaluated with the heavy branches on and off.
//
//   build/examples/train_image                      # CPU-sized defaults, about a minute
//   build/examples/train_image --steps 600 --device cuda
#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <vector>

#include "autograd/ops.h"
#include "examples/train/trainer.h"
#include "nn/data.h"
#include "nn/image.h"
#include "nn/optim.h"

using namespace colt5;

namespace {

struct ImageTask {
  int64_t size = 16;     // S
  int64_t square = 4;    // s (even)
  double noise = 0.3;

  // images [b, 1, S, S] float32 and labels [b] int64, on the CPU.
  std::pair<Tensor, Tensor> batch(int64_t b, uint64_t seed, uint64_t step, uint64_t split) const {
    nn::SplitMix64 rng = nn::SplitMix64::stream(seed, step, split);
    std::vector<float> img(size_t(b * size * size));
    std::vector<int64_t> label(static_cast<size_t>(b));
    const int64_t half = size / 2, room = half - square + 1;
    for (int64_t i = 0; i < b; ++i) {
      float* im = img.data() + i * size * size;
      // noise: Box-Muller on two uniforms of the stream
      for (int64_t p = 0; p < size * size; p += 2) {
        const double u1 = (double(rng.next() >> 11) + 0.5) / 9007199254740992.0;
        const double u2 = double(rng.next() >> 11) / 9007199254740992.0;
        const double r = std::sqrt(-2.0 * std::log(u1)) * noise;
        im[p] = float(r * std::cos(6.283185307179586 * u2));
        if (p + 1 < size * size) im[p + 1] = float(r * std::sin(6.283185307179586 * u2));
      }
      const int64_t odd = rng.below(4);
      label[size_t(i)] = odd;
      for (int64_t q = 0; q < 4; ++q) {
        const int64_t y0 = (q / 2) * half + rng.below(room), x0 = (q % 2) * half + rng.below(room);
        for (int64_t y = 0; y < square; ++y)
          for (int64_t x = 0; x < square; ++x)
            im[(y0 + y) * size + x0 + x] += (q == odd) ? ((x + y) % 2 == 0 ? 2.0f : 0.0f) : 1.0f;
      }
    }
    return {from_vector(img, {b, 1, size, size}), from_vector(label, {b})};
  }
};

// Mean loss and accuracy over `batches` validation batches.
std::pair<double, double> evaluate(nn::ConditionalRoutedViT& m, const ImageTask& task, int64_t batches, int64_t bs,
                                   uint64_t seed, Device dev) {
  NoGradGuard ng;
  m.eval();
  double loss = 0;
  int64_t correct = 0, total = 0;
  for (int64_t i = 0; i < batches; ++i) {
    auto [x, y] = task.batch(bs, seed, uint64_t(i), 4);
    const Tensor logits = m(x.to(dev));
    loss += cross_entropy(logits, y.to(dev)).item_double() / double(batches);
    const auto pred = argmax(logits, 1).to(kCPU).to_vector<int64_t>();
    const auto want = y.to_vector<int64_t>();
    for (size_t j = 0; j < want.size(); ++j) correct += pred[j] == want[j];
    total += int64_t(want.size());
  }
  m.train();
  return {loss, double(correct) / double(total)};
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"train_image: the routed ViT on \"which quadrant holds the odd patch\""};
  int64_t steps = 800, batch = 32, eval_batches = 8;
  double lr = 2e-3;
  uint64_t seed = 0;
  std::string device = "auto";
  ImageTask task;
  app.add_option("--steps", steps, "optimizer steps")->check(CLI::Range(int64_t(1), int64_t(1) << 30));
  app.add_option("--batch-size", batch, "images per step")->check(CLI::Range(int64_t(1), int64_t(1) << 14));
  app.add_option("--lr", lr, "peak learning rate (AdamW, warm-up then cosine)")->check(CLI::Range(1e-6, 1.0));
  app.add_option("--seed", seed, "initialisation and data");
  app.add_option("--device", device, "auto, cpu or cuda");
  app.add_option("--noise", task.noise, "pixel noise std")->check(CLI::Range(0.0, 10.0));
  app.add_option("--eval-batches", eval_batches, "validation batches")->check(CLI::Range(int64_t(1), int64_t(1) << 12));
  app.failure_message(CLI::FailureMessage::help);  // a bad flag prints the usage
  CLI11_PARSE(app, argc, argv);

  try {
    const Device dev = train::resolve_device(device);
    // 16 x 16 pixels, patches of 2: an 8 x 8 map, light windows of 4 x 4 patches (4 windows,
    // 16 tokens each: a square spans 2 x 2 patches of one or two windows), 4 heavy queries and 8
    // heavy keys / values per window, 16 heavy feedforward tokens of the 64.
    nn::ConditionalRoutedViTOptions o;
    o.image_size = task.size, o.patch_size = 2, o.num_classes = 4, o.channels = 1;
    o.dim = 32, o.depth = 2;
    o.attn_num_heavy_tokens_q = 4, o.attn_num_heavy_tokens_kv = 8, o.attn_heavy_dim_head = 16, o.attn_heavy_heads = 2;
    o.attn_light_dim_head = 16, o.attn_light_heads = 2, o.attn_light_window_size = 4;
    o.ff_num_heavy_tokens = 16, o.ff_heavy_mult = 4, o.ff_light_mult = 0.5;
    Generator gen(seed);
    nn::ConditionalRoutedViT model(o, &gen);
    model.to(dev);
    nn::AdamWOptions ao;
    ao.lr = lr;
    ao.beta2 = 0.99;
    nn::AdamW opt(nn::param_groups_for(model, 0.01), ao);
    fmt::print("colt5 train_image: device {}, {} parameters\n", dev.name(), model.num_parameters());
    fmt::print("  task: {}x{} images, which quadrant holds the checkerboard square (chance 25%)\n", task.size, task.size);
    fmt::print("  model: ViT dim {}, depth {}, patches of 2, light windows of 4x4 patches, heavy 4 q / 8 kv per window, "
               "16 ff tokens; AdamW lr {}, batch {}\n",
               o.dim, o.depth, lr, batch);
    const auto t0 = std::chrono::steady_clock::now();
    const int64_t warmup = std::min<int64_t>(30, steps);
    double smooth = 0;
    for (int64_t s = 0; s < steps; ++s) {
      auto [x, y] = task.batch(batch, seed, uint64_t(s), 3);
      const Tensor loss = cross_entropy(model(x.to(dev)), y.to(dev));
      opt.zero_grad();
      loss.backward();
      nn::clip_grad_norm(model.parameters(), 1.0);
      opt.set_lr(nn::warmup_cosine_lr(s, warmup, steps, lr, lr / 10));
      opt.step();
      const double l = loss.item_double();
      smooth = s == 0 ? l : 0.95 * smooth + 0.05 * l;
      if ((s + 1) % std::max<int64_t>(1, steps / 10) == 0 || s + 1 == steps) {
        const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        fmt::print("step {:>5}/{}  loss {:.4f}  {:.1f} ms/step\n", s + 1, steps, smooth, 1e3 * sec / double(s + 1));
        std::fflush(stdout);
      }
    }
    auto [loss_on, acc_on] = evaluate(model, task, eval_batches, batch, seed, dev);
    model.set_heavy_enabled(false);
    auto [loss_off, acc_off] = evaluate(model, task, eval_batches, batch, seed, dev);
    model.set_heavy_enabled(true);
    fmt::print("\nfinal evaluation ({} validation images):\n", eval_batches * batch);
    fmt::print("  routed (light + heavy)  loss {:.4f}  accuracy {:.1f}%\n", loss_on, 100 * acc_on);
    fmt::print("  heavy branch off        loss {:.4f}  accuracy {:.1f}%\n", loss_off, 100 * acc_off);
    fmt::print("  chance                  accuracy 25.0%\n");
  } catch (const std::exception& e) {
    fmt::print(stderr, "train_image: {}\n", e.what());
    return 1;
  }
  return 0;
}
