// Trainer: one training run of a CoLT5 model on the recall task or on a text file — data, model,
// AdamW with parameter groups, warm-up + cosine schedule, clipping, gradient accumulation,
// evaluation, history, and checkpoints that resume bit-identically on the CPU.
//
// One step s (0-based) of a run:
//   lr = warmup_cosine_lr(s, warmup, steps, lr, min_lr)
//   for each micro-batch i < grad_accum:   batch(seed, s * grad_accum + i); (loss / grad_accum).backward()
//   gnorm = clip_grad_norm(parameters, clip);  AdamW step;  zero_grad
// The step leaves its loss and gradient norm on the device and reads both back with one copy at
// its end: on a GPU that is the step's only host wait. With CUDA graphs on (set_cuda_graph), the
// step is captured after two warm-up steps (core/graph.h) and replayed from then on: each
// replay's micro-batches are copied into the tensors the capture read, the learning rate is
// staged where AdamW's kernel reads it, and one graph launch does the rest. The kernels and
// their order are the same, so the losses are the same bit for bit. A capture that fails (the
// message says why) leaves the run on the ordinary step.
// Batches depend on (seed, step) only and nothing in a step is random, so the state after step
// s is a function of the parameters and the optimizer state before it: a checkpoint holds both,
// and a resumed run repeats the uninterrupted one exactly (bit for bit on the CPU, where the
// kernels are deterministic).
//
// Checkpoint (safetensors): tensors "model.<parameter name>" and "optim.<optimizer state name>"
// (nn/optim.h lists those); metadata
//   colt5.format  "colt5-train-checkpoint/1"
//   colt5.config  the TrainConfig as JSON (model config included)
//   colt5.step    steps done
//   colt5.history the history rows as JSON
//   colt5.optim_tensors  the number of optim.* tensors (a reader checks that none went missing)
// Reading one is reading untrusted input: the config is range-checked before anything is built
// (nn::ModelLimits, TrainLimits), the metadata parsed strictly (nn/json_read.h), every tensor
// must be finite, and a resume needs the complete AdamW state.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config.h"
#include "core/graph.h"
#include "nn/data.h"
#include "nn/models.h"
#include "nn/optim.h"

namespace colt5::train {

inline constexpr const char* kCheckpointFormat = "colt5-train-checkpoint/1";

struct StepStats {
  int64_t step = 0;         // 1-based: steps done after this one
  double loss = 0;          // mean over the micro-batches
  double grad_norm = 0;     // before clipping
  double lr = 0;
  double seconds = 0;       // wall time of the step
  int64_t tokens = 0;       // input tokens processed
  bool graphed = false;     // replayed from a CUDA graph
};

struct EvalResult {
  double loss = 0;                   // mean cross entropy (nats)
  std::optional<double> accuracy;    // recall: fraction of correct answers
  int64_t samples = 0;    // sequences
  int64_t questions = 0;  // recall: labels (samples x queries)
};

// One row per step; the validation columns are set on evaluation steps.
struct HistoryRow {
  int64_t step = 0;
  double train_loss = 0, grad_norm = 0, lr = 0;
  std::optional<double> val_loss, val_accuracy;
};

class Trainer {
public:
  // Validates cfg, picks the device, builds the data, the model (initialised from cfg.seed) and
  // the optimizer. Throws colt5::Error on a bad setting, an unreadable or too short data file, or
  // --device cuda without a GPU.
  explicit Trainer(const TrainConfig& cfg);

  StepStats train_step();
  // CUDA graphs for the step (GPU only; off by default). graph_status() says what happened: ""
  // before a capture was tried, else "captured (N nodes)" or "capture failed: <why>".
  void set_cuda_graph(bool on);
  const std::string& graph_status() const { return graph_status_; }
  // Validation loss (and accuracy) over cfg.eval_batches fixed batches; heavy = false evaluates
  // the heavy-off ablation. The model's heavy switch is restored afterwards.
  EvalResult evaluate(bool heavy = true, std::optional<int64_t> batches = std::nullopt);

  // Write a checkpoint (atomically: a temporary file renamed into place).
  void save_checkpoint(const std::string& path) const;
  // Restore the model, the optimizer, the step and the history from a checkpoint written with
  // the same trajectory settings (TrainConfig::resume_mismatch); anything else throws.
  void load_checkpoint(const std::string& path);
  // The config stored in a checkpoint (throws on a missing, truncated or foreign file).
  static TrainConfig read_checkpoint_config(const std::string& path);
  // The model of a checkpoint alone (for inference), on `device`; *config receives its config.
  static std::unique_ptr<nn::Model> load_model(const std::string& path, Device device, TrainConfig* config = nullptr);

  int64_t step() const { return step_; }
  const TrainConfig& config() const { return cfg_; }
  Device device() const { return device_; }
  nn::Model& model() { return *model_; }
  const std::vector<HistoryRow>& history() const { return history_; }
  std::vector<HistoryRow>& history() { return history_; }
  double chance() const;  // recall: 1 / V; text: 0
  const nn::TextDataset* text_data() const { return text_ ? &*text_ : nullptr; }

private:
  nn::Batch make_batch(nn::Split split, uint64_t index, bool to_device = true) const;
  Tensor loss_of(const Tensor& logits, const Tensor& targets) const;
  // The model's forward in the run's precision (--precision bf16: under an autocast guard).
  Tensor forward(const Tensor& inputs) const;
  // The step's work on given micro-batches: forward, backward, clipping, AdamW, zero_grad; returns
  // float64 [2] = {mean loss, gradient norm} on the device (nothing is read back).
  Tensor step_on(const std::vector<nn::Batch>& batches);
  // The micro-batches of step `step` (on the device, or as made on the host).
  std::vector<nn::Batch> train_batches(int64_t step, bool to_device) const;
  // Make step `step`'s micro-batches on the host and queue their copies into graph_batches_.
  void stage_graph_batches(int64_t step);
  StepStats finish_step(const Tensor& stats, const std::vector<nn::Batch>& batches, double lr,
                        std::chrono::steady_clock::time_point t0, bool graphed);
  bool try_capture();

  TrainConfig cfg_;
  Device device_;
  std::optional<nn::RecallTask> recall_;
  std::optional<nn::TextDataset> text_;
  std::unique_ptr<nn::Model> model_;
  std::unique_ptr<nn::AdamW> opt_;
  int64_t step_ = 0;
  std::vector<HistoryRow> history_;
  // CUDA graph state: the captured step, the micro-batch tensors it reads, its result
  bool graph_wanted_ = false;
  int64_t eager_steps_ = 0;  // ordinary steps done by this Trainer (the warm-up before a capture)
  std::unique_ptr<Graph> graph_;
  std::vector<nn::Batch> graph_batches_;
  Tensor graph_stats_;
  bool graph_fresh_ = false;  // captured but not yet replayed: the capture's step() counted it
  int64_t staged_step_ = -1;  // the step whose batches graph_batches_ hold (or will, in stream order)
  std::string graph_status_;
};

// The device a setting names: "auto" -> cuda when available, else cpu.
Device resolve_device(const std::string& name);

}  // namespace colt5::train
