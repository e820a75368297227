// Optimizers, gradient clipping and the learning-rate schedule.
//
// An Optimizer holds parameter groups (each with its own lr and weight decay) and per-parameter
// state tensors; step() updates every parameter that has a gradient, in place on the parameter's
// storage (under NoGradGuard, so no graph is recorded and every Tensor handle of the parameter
// sees the new values).
//
// SGD (as torch.optim.SGD; weight decay is coupled, i.e. added to the gradient):
//   d = g + wd * p
//   b = d                                   on the first step (momentum buffer)
//   b = mu * b + (1 - dampening) * d        afterwards
//   d = nesterov ? d + mu * b : b           (when mu != 0)
//   p = p - lr * d
//
// AdamW (as torch.optim.AdamW; weight decay is decoupled, applied to p before the Adam step):
//   p  = p * (1 - lr * wd)
//   m  = m + (1 - b1) * (g - m)             (= b1 m + (1 - b1) g)
//   v  = b2 v + (1 - b2) g^2
//   p  = p - (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
// with t the parameter's step count (1 on its first update). The whole update of every
// parameter is one list op (ops::adamw_multi, core/ops/optim.h: a few launches on CUDA, however
// many parameters); arithmetic is in double for both float and double parameters, so the CPU
// reference and the CUDA kernel agree to rounding. The step counts and the groups' learning
// rates live on the parameters' device, where the kernel reads them: a step needs nothing from
// the host but the launch, and a CUDA graph that captured it (core/graph.h) replays it right
// when the learning rate changes, as long as stage_lr() runs before each replay.
//
// Gradient accumulation needs nothing special: backward() adds into .grad(), so calling
// backward on k micro-batches before one step() equals one backward on their summed loss
// (scale each micro-batch loss by 1/k for a mean). zero_grad() after the step starts the next.
//
// State (for checkpoints): state() lists the state tensors under stable names
//   "step"                      int64 scalar, number of step() calls
//   "state.<i>.step"            int64 scalar, updates of parameter i (AdamW; on the parameter's
//                               device, a view into the optimizer's counters)
//   "state.<i>.exp_avg"         m of parameter i (AdamW)
//   "state.<i>.exp_avg_sq"      v of parameter i (AdamW)
//   "state.<i>.momentum_buffer" b of parameter i (SGD with momentum)
// where i numbers the parameters over all groups in order. load_state() restores them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/ops/optim.h"
#include "core/tensor.h"
#include "nn/module.h"

namespace colt5 {

namespace nn {

struct ParamGroup {
  TensorList params;
  double lr = -1.0;  // negative: unset, the optimizer's lr applies (set_lr requires >= 0)
  double weight_decay = 0.0;
  std::vector<std::string> names;  // parameter names where known (param_groups_for), else empty
};

// Two groups for `m`: {decayed, not decayed}, in that order, with lr unset (the optimizer's lr
// applies). A group with no parameters is left out.
// A parameter goes to the group WITHOUT weight decay when any of these holds:
//   - it has fewer than 2 dims (biases, norm gains/biases, scalars, 1-D tokens),
//   - its last name component is "bias",
//   - a name component contains "norm" (the gains and biases of LayerNorm / RMSNorm children),
//   - its name contains "null_" (null key/value/query tokens) or "routing_token".
// Everything else (weight matrices, embeddings) is decayed with `weight_decay`.
std::vector<ParamGroup> param_groups_for(const Module& m, double weight_decay);
bool is_no_decay_name(const std::string& name, int64_t ndim);

class Optimizer {
public:
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  virtual void step() = 0;
  // Drop every parameter's gradient (the next backward starts from zero).
  void zero_grad();

  std::vector<ParamGroup>& groups() { return groups_; }
  const std::vector<ParamGroup>& groups() const { return groups_; }
  void set_lr(double lr);                // every group
  void set_lr(size_t group, double lr);  // one group
  double lr(size_t group = 0) const;
  int64_t steps() const { return steps_; }
  // A captured step was replayed (core/graph.h): the device state advanced without step()
  // running on the host, so count it here.
  void count_replayed_step() { ++steps_; }

  // State tensors under the names listed at the top of this file (handles, not copies).
  NamedTensors state() const;
  // Restore from state(): every name must be known and every shape must match the parameter's;
  // values are copied (converted to the parameter's dtype and device). strict: a missing name is
  // an error too.
  void load_state(const NamedTensors& state, bool strict = true);

protected:
  Optimizer(std::vector<ParamGroup> groups, const char* name);
  // Calls f(param_index, group, param) for every parameter that has a gradient.
  template <class F>
  void for_each_with_grad(F&& f) {
    size_t i = 0;
    for (auto& g : groups_)
      for (auto& p : g.params) {
        if (p.grad().defined()) f(i, g, p);
        ++i;
      }
  }
  size_t num_params() const;
  const Tensor& param_at(size_t i) const;
  // Names of the per-parameter state tensors of this optimizer ("exp_avg", ...).
  virtual std::vector<std::string> state_keys() const = 0;
  // The state tensor `key` of parameter i (a reference into the optimizer; may be undefined).
  virtual Tensor& state_slot(size_t i, const std::string& key) = 0;
  // Restore parameter i's "step" state (load_state).
  virtual void set_count(size_t i, int64_t value) { state_slot(i, "step") = from_vector<int64_t>({value}, {}); }

  std::vector<ParamGroup> groups_;
  int64_t steps_ = 0;
  const char* name_;
};

struct SGDOptions {
  double lr = 1e-3;
  double momentum = 0.0;
  double dampening = 0.0;
  double weight_decay = 0.0;
  bool nesterov = false;
};

class SGD : public Optimizer {
public:
  // One group with opts.lr and opts.weight_decay.
  SGD(TensorList params, const SGDOptions& opts);
  // Groups keep their own weight_decay; a group with lr unset (< 0, as built by
  // param_groups_for) takes opts.lr; opts.weight_decay is not used.
  SGD(std::vector<ParamGroup> groups, const SGDOptions& opts);
  void step() override;

private:
  std::vector<std::string> state_keys() const override { return {"momentum_buffer"}; }
  Tensor& state_slot(size_t i, const std::string& key) override;
  SGDOptions opts_;
  std::vector<Tensor> momentum_;  // one per parameter, undefined until its first update
};

struct AdamWOptions {
  double lr = 1e-3;
  double beta1 = 0.9, beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.01;
};

class AdamW : public Optimizer {
public:
  AdamW(TensorList params, const AdamWOptions& opts = {});
  AdamW(std::vector<ParamGroup> groups, const AdamWOptions& opts = {});
  void step() override;
  // Copy the groups' learning rates to the device vector the update reads, where they changed
  // since the last copy (step() calls it first). Outside a graph capture only: a replayed step
  // reads whatever was staged before the replay.
  void stage_lr();

private:
  std::vector<std::string> state_keys() const override { return {"step", "exp_avg", "exp_avg_sq"}; }
  Tensor& state_slot(size_t i, const std::string& key) override;
  void set_count(size_t i, int64_t value) override;
  // The counters (int64 [params]) and learning rates (float64 [groups]) on `d`, made or moved
  // there when needed.
  void place_state(Device d);
  Tensor count_view(size_t i) const;  // parameter i's counter: element i of steps_dev_
  AdamWOptions opts_;
  std::vector<Tensor> exp_avg_, exp_avg_sq_;
  std::vector<Tensor> count_;     // views of steps_dev_, defined once parameter i was updated
  Tensor steps_dev_, lr_dev_;     // counters and learning rates where the update kernel reads them
  std::vector<double> lr_staged_;  // what lr_dev_ holds
};

// Global L2 norm of the gradients of `params` (those without a gradient are skipped), and
// clipping as torch.nn.utils.clip_grad_norm_: every gradient is multiplied in place by
//   min(1, max_norm / (norm + 1e-6))
// (so by exactly 1 below the limit). max_norm = +infinity only measures. The norm, a float64
// scalar on the gradients' device, is returned before clipping; nothing is read back, so the
// step need not wait for the GPU (two list ops and three scalar ops whatever the number of
// parameters). The double overload reads the norm back (one host wait).
Tensor clip_grad_norm_(const TensorList& params, double max_norm);
double clip_grad_norm(const TensorList& params, double max_norm);

// Linear warm-up then cosine decay:
//   step <  warmup:           base_lr * (step + 1) / warmup
//   warmup <= step < total:   min_lr + (base_lr - min_lr) * (1 + cos(pi * (step - warmup) / (total - warmup))) / 2
//   step >= total:            min_lr
double warmup_cosine_lr(int64_t step, int64_t warmup, int64_t total, double base_lr, double min_lr);

}  // namespace nn
}  // namespace colt5
