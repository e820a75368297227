// TrainConfig: everything that defines a training run of examples/train, with the presets the
// program uses when no flag is given, JSON for checkpoints, and validation for bad flags.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "nn/data.h"
#include "nn/models.h"

namespace colt5::train {

// Upper bounds of the settings that size memory or time (validate() checks them, naming the flag,
// before anything is allocated; the model's own bounds are nn::ModelLimits).
struct TrainLimits {
  static constexpr int64_t kSeqLen = nn::ModelLimits::kSeqLen;  // --seq-len
  static constexpr int64_t kBatch = int64_t(1) << 16;           // --batch-size
  static constexpr int64_t kTokens = int64_t(1) << 24;          // --batch-size x --seq-len, one micro-batch
  static constexpr int64_t kGradAccum = int64_t(1) << 16;       // --grad-accum
  static constexpr int64_t kSteps = int64_t(1) << 40;           // --steps, --warmup
  static constexpr int64_t kEvalBatches = int64_t(1) << 16;     // --eval-batches
  static constexpr int64_t kRecallVocab = int64_t(1) << 16;     // --keys, --values, --noise
};

struct TrainConfig {
  // ---- the task ----
  std::string task = "recall";  // "recall" (synthetic associative recall, encoder) | "text" (LM)
  std::string data_path;        // text: the training file (stored absolute)
  int64_t data_size = 0;        // text: its size in bytes and hash (data_fingerprint), filled in by the
  std::string data_hash;        //   Trainer; a resumed run checks them, so --data may name a moved copy
  int64_t seq_len = 64;         // text: window length; recall: the sequence length
  double val_fraction = 0.1;    // text: the tail of the file held out
  nn::RecallTaskOptions recall; // recall (its seq_len is seq_len above)
  nn::ModelConfig model;        // vocab, classes and max_seq_len are derived from the task

  // ---- optimisation ----
  int64_t steps = 1000;
  int64_t batch_size = 32;
  int64_t grad_accum = 1;       // micro-batches per step (each of batch_size sequences)
  double lr = 3e-3;
  double min_lr = 3e-4;         // the cosine schedule's floor
  int64_t warmup = 50;
  double weight_decay = 0.01;
  double beta1 = 0.9, beta2 = 0.99;
  double clip = 1.0;            // max global gradient norm; 0 = no clipping
  uint64_t seed = 0;            // initialisation and data

  // ---- running (may change when a run is resumed) ----
  std::string device = "auto";  // "auto" (cuda when there is a GPU) | "cpu" | "cuda"
  std::string precision = "fp32"; // "fp32" | "bf16": autocast of the matrix products (core/autocast.h);
                                  //   parameters, optimizer state and everything else stay float32
  std::string out_dir = "runs/colt5";
  int64_t eval_every = 100;     // 0 = only at the end
  int64_t eval_batches = 8;
  int64_t checkpoint_every = 0; // every N steps (0: by time only, see checkpoint_minutes)
  double checkpoint_minutes = 5;// also after this much wall time since the last save (0 = off)
  int64_t log_every = 0;        // plain-line progress every N steps; 0 = about 100 lines a run

  // Fill the model's task-dependent fields (vocab_size, num_classes, max_seq_len, kind) and the
  // recall task's seq_len from the task settings.
  void derive();
  // Throws colt5::Error naming the first setting out of range (as its command-line flag).
  void validate() const;

  nlohmann::json to_json() const;
  static TrainConfig from_json(const nlohmann::json& j);
  // Calls f(name, field) for every field except `model` (which has its own list): one list for
  // to_json and from_json (nn/json_fields.h).
  template <class Self, class F>
  static void for_each_field(Self& c, F&& f) {
    f("task", c.task), f("data_path", c.data_path), f("data_size", c.data_size), f("data_hash", c.data_hash);
    f("seq_len", c.seq_len), f("val_fraction", c.val_fraction);
    f("num_pairs", c.recall.num_pairs), f("num_keys", c.recall.num_keys), f("num_values", c.recall.num_values);
    f("num_noise", c.recall.num_noise), f("num_queries", c.recall.num_queries);
    f("steps", c.steps), f("batch_size", c.batch_size), f("grad_accum", c.grad_accum), f("lr", c.lr);
    f("min_lr", c.min_lr), f("warmup", c.warmup), f("weight_decay", c.weight_decay), f("beta1", c.beta1);
    f("beta2", c.beta2), f("clip", c.clip), f("seed", c.seed), f("device", c.device), f("out_dir", c.out_dir);
    f("precision", c.precision);
    f("eval_every", c.eval_every), f("eval_batches", c.eval_batches), f("checkpoint_every", c.checkpoint_every);
    f("checkpoint_minutes", c.checkpoint_minutes), f("log_every", c.log_every);
  }

  // The settings a resumed run must share with its checkpoint (everything that changes the
  // trajectory: task, data, model, optimiser, seed). Returns "" when they agree, else a message
  // naming the first that differs.
  std::string resume_mismatch(const TrainConfig& checkpoint) const;
};

// The command-line flag of a setting ("batch_size" -> "--batch-size", "data_path" -> "--data",
// "model.light_window_size" -> "--light-window"), or "" for a setting that has no flag.
std::string flag_of(const std::string& field);

// What identifies a data file's contents: its size and a 64-bit FNV-1a hash of its bytes, as 16
// hex digits (an identity check against a moved or edited file, not a cryptographic one).
std::string data_fingerprint(std::string_view bytes);

// The preset of `task` for a device: "cpu" finishes in about two minutes on two cores, "cuda" is
// a larger model and task for a GPU.
TrainConfig preset(const std::string& task, bool gpu);

}  // namespace colt5::train
