// Small training configurations and data files shared by the tests of examples/train.
#pragma once

#include <fstream>
#include <string>

#include "config.h"

namespace colt5::testing {

// A recall run small enough for a few seconds on one core.
inline train::TrainConfig tiny_recall(const std::string& out) {
  train::TrainConfig c = train::preset("recall", false);
  c.device = "cpu";
  c.seq_len = 24;
  c.recall.num_pairs = 2, c.recall.num_keys = 4, c.recall.num_values = 4, c.recall.num_noise = 4;
  c.model.dim = 16, c.model.depth = 1, c.model.light_window_size = 4;
  c.model.num_heavy_tokens_q = 4, c.model.num_heavy_tokens_kv = 6, c.model.num_heavy_ff_tokens = 4;
  c.model.light_heads = 2, c.model.light_dim_head = 8, c.model.heavy_heads = 2, c.model.heavy_dim_head = 8;
  c.steps = 8, c.batch_size = 8, c.warmup = 2, c.eval_batches = 2;
  c.out_dir = out;
  c.derive();
  return c;
}

inline std::string text_file(const std::string& name) {
  const std::string path = "/tmp/colt5_test_train_" + name;
  std::ofstream f(path, std::ios::binary);
  for (int i = 0; i < 300; ++i) f << "the quick brown fox jumps over the lazy dog. ";
  return path;
}

inline train::TrainConfig tiny_text(const std::string& data) {
  train::TrainConfig c = train::preset("text", false);
  c.device = "cpu";
  c.data_path = data;
  c.seq_len = 32;
  c.model.dim = 32, c.model.depth = 1, c.model.light_window_size = 8, c.model.heavy_window_size = 8;
  c.model.num_heavy_tokens_kv = 4, c.model.num_heavy_ff_tokens = 2, c.model.ff_window_size = 8;
  c.model.light_heads = 2, c.model.light_dim_head = 16, c.model.heavy_heads = 2, c.model.heavy_dim_head = 16;
  c.steps = 60, c.batch_size = 8, c.warmup = 5, c.lr = 1e-2, c.min_lr = 1e-3;
  c.derive();
  return c;
}

}  // namespace colt5::testing
