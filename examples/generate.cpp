// generate: sample text from a language model trained by examples/train --data FILE.
//
//   build/examples/generate --checkpoint runs/colt5/checkpoint.safetensors --prompt "The "
//                           --length 200 --temperature 0.8 --top-k 40 --seed 1
//
// Each new byte: run the model on the last max_seq_len bytes of the text so far, take the logits
// of the last position, divide by the temperature, keep the top-k, softmax, and draw from that
// distribution with a generator seeded by --seed (the same seed gives the same text).
// --temperature 0 takes the most likely byte instead of sampling.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "autograd/ops.h"
#include "core/backend.h"
#include "core/format.h"
#include "nn/data.h"
#include "report.h"
#include "trainer.h"

using namespace colt5;

namespace {

// Index drawn from logits [V] (host values) with temperature and top-k.
int64_t sample(std::vector<double> logits, double temperature, int64_t top_k, nn::SplitMix64& rng) {
  const int64_t v = static_cast<int64_t>(logits.size());
  if (temperature == 0) return std::max_element(logits.begin(), logits.end()) - logits.begin();
  std::vector<int64_t> order(v);
  for (int64_t i = 0; i < v; ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return logits[a] > logits[b]; });
  const int64_t k = top_k > 0 ? std::min(top_k, v) : v;
  std::vector<double> p(k);
  double total = 0;
  for (int64_t i = 0; i < k; ++i) total += p[i] = std::exp((logits[order[i]] - logits[order[0]]) / temperature);
  // A uniform draw in [0, total): 53 random bits.
  double u = static_cast<double>(rng.next() >> 11) * 0x1.0p-53 * total;
  for (int64_t i = 0; i < k; ++i) {
    if (u < p[i]) return order[i];
    u -= p[i];
  }
  return order[k - 1];
}

int run(int argc, char** argv) {
  std::string checkpoint, prompt = "\n", device = "auto";
  int64_t length = 200, top_k = 40;
  double temperature = 0.8;
  uint64_t seed = 0;
  CLI::App app{"colt5 generate: sample bytes from a language model checkpoint written by train --data FILE"};
  app.add_option("--checkpoint", checkpoint, "checkpoint of a text model (train --data FILE)")->required();
  app.add_option("--prompt", prompt, "text to continue");
  app.add_option("--length", length, "bytes to generate")->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  app.add_option("--temperature", temperature, "softmax temperature (> 0), or 0 for the most likely byte")
      ->check(CLI::Range(0.0, 100.0));
  app.add_option("--top-k", top_k, "sample among the k most likely bytes (0 = all)")->check(CLI::Range(int64_t{0}, int64_t{256}));
  app.add_option("--seed", seed, "seed of the sampler");
  app.add_option("--device", device, "auto, cpu or cuda")->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  app.failure_message(CLI::FailureMessage::help);  // a bad flag prints the usage
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  COLT5_CHECK(!prompt.empty(), "flag --prompt: expected at least one byte");
  // CLI11's range check lets NaN through (every comparison with it is false).
  COLT5_CHECK(std::isfinite(temperature), "flag --temperature: expected a finite value in [0, 100], got ", temperature);

  train::TrainConfig cfg;
  const Device dev = train::resolve_device(device);
  auto model = train::Trainer::load_model(checkpoint, dev, &cfg);
  COLT5_CHECK(cfg.model.kind == "lm", "flag --checkpoint: '", checkpoint, "' holds a ", cfg.task,
              " model (", cfg.model.kind, "); generate needs a language model trained with train --data FILE");
  model->eval();
  NoGradGuard no_grad;
  nn::SplitMix64 rng = nn::SplitMix64::stream(seed, 0x67656e);
  std::vector<int64_t> text;
  for (unsigned char c : prompt) text.push_back(c);
  std::fwrite(prompt.data(), 1, prompt.size(), stdout);
  for (int64_t i = 0; i < length; ++i) {
    const int64_t n = std::min<int64_t>(static_cast<int64_t>(text.size()), cfg.model.max_seq_len);
    const std::vector<int64_t> ctx(text.end() - n, text.end());
    const Tensor logits = model->forward(from_vector(ctx, {1, n}, dev));  // [1, n, 256]
    const auto last = logits.select(1, n - 1).reshape({-1}).to(kCPU).to(DType::Float64).to_vector<double>();
    for (double v : last)
      COLT5_CHECK(std::isfinite(v), "the model gave a non-finite logit (", v, ") for byte ", i + 1, " of --length ", length,
                  "; the checkpoint '", checkpoint, "' cannot generate");
    const int64_t next = sample(last, temperature, top_k, rng);
    text.push_back(next);
    std::fputc(static_cast<int>(next), stdout);
    std::fflush(stdout);
  }
  std::fputc('\n', stdout);
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return train::guarded_main("generate", run, argc, argv); }
