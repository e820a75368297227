// Optimizers (SGD, AdamW), gradient clipping and the warm-up + cosine schedule. The update
// formulas are at the top of nn/optim.h. SGD is written with tensor ops (any device); AdamW
// and clipping call the list ops of core/ops/optim.h once per (device, dtype) of the parameters.
#include "nn/optim.h"

#include <cmath>
#include <limits>
#include <map>
#include <numbers>
#include <set>
#include <utility>

#include "autograd/ops.h"
#include "core/ops/copy.h"

namespace colt5 {


namespace nn {

namespace {

void check_lr(double lr, const char* op) {
  COLT5_CHECK(std::isfinite(lr) && lr >= 0.0, op, ": argument 'lr' expected a finite value >= 0, got ", lr);
}
void check_weight_decay(double wd, const char* op) {
  COLT5_CHECK(std::isfinite(wd) && wd >= 0.0, op, ": argument 'weight_decay' expected a finite value >= 0, got ", wd);
}

// Writes src into p's storage (p keeps its handle, dtype and geometry).
void assign(const Tensor& p, const Tensor& src) {
  Tensor d = p.detach();
  ops::copy_(d, src);
}

}  // namespace

bool is_no_decay_name(const std::string& name, int64_t ndim) {
  if (ndim < 2) return true;
  if (name.find("null_") != std::string::npos || name.find("routing_token") != std::string::npos) return true;
  const size_t dot = name.rfind('.');
  const std::string last = dot == std::string::npos ? name : name.substr(dot + 1);
  if (last == "bias") return true;
  // any component (other than the last) that names a norm: "norm", "attn_norm", "norm_q", ...
  size_t start = 0;
  while (start < name.size()) {
    size_t end = name.find('.', start);
    if (end == std::string::npos) end = name.size();
    if (end != name.size() && name.substr(start, end - start).find("norm") != std::string::npos) return true;
    start = end + 1;
  }
  return false;
}

std::vector<ParamGroup> param_groups_for(const Module& m, double weight_decay) {
  check_weight_decay(weight_decay, "param_groups_for");
  ParamGroup decay, no_decay;
  decay.weight_decay = weight_decay;
  no_decay.weight_decay = 0.0;
  for (const auto& [name, p] : m.named_parameters()) {
    ParamGroup& g = is_no_decay_name(name, p.dim()) ? no_decay : decay;
    g.params.push_back(p);
    g.names.push_back(name);
  }
  std::vector<ParamGroup> out;
  if (!decay.params.empty()) out.push_back(std::move(decay));
  if (!no_decay.params.empty()) out.push_back(std::move(no_decay));
  return out;
}

// ---- Optimizer ----

Optimizer::Optimizer(std::vector<ParamGroup> groups, const char* name) : groups_(std::move(groups)), name_(name) {
  std::set<const TensorImpl*> seen;
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    check_weight_decay(groups_[gi].weight_decay, name);
    for (const Tensor& p : groups_[gi].params) {
      COLT5_CHECK(p.defined(), name, ": argument 'params' expected defined tensors, got an undefined one in group ", gi);
      check_floating(p, name, "params");
      COLT5_CHECK(seen.insert(p.impl()).second, name, ": argument 'params' expected each parameter once, got one twice");
    }
  }
}

void Optimizer::zero_grad() {
  for (auto& g : groups_)
    for (auto& p : g.params) p.zero_grad();
}

void Optimizer::set_lr(double lr) {
  check_lr(lr, name_);
  for (auto& g : groups_) g.lr = lr;
}

void Optimizer::set_lr(size_t group, double lr) {
  check_lr(lr, name_);
  COLT5_CHECK(group < groups_.size(), name_, ": argument 'group' expected < ", groups_.size(), ", got ", group);
  groups_[group].lr = lr;
}

double Optimizer::lr(size_t group) const {
  COLT5_CHECK(group < groups_.size(), name_, ": argument 'group' expected < ", groups_.size(), ", got ", group);
  return groups_[group].lr;
}

size_t Optimizer::num_params() const {
  size_t n = 0;
  for (const auto& g : groups_) n += g.params.size();
  return n;
}

const Tensor& Optimizer::param_at(size_t i) const {
  for (const auto& g : groups_) {
    if (i < g.params.size()) return g.params[i];
    i -= g.params.size();
  }
  fail(str(name_, ": parameter index out of range"));
}

NamedTensors Optimizer::state() const {
  NamedTensors out;
  out.emplace_back("step", from_vector<int64_t>({steps_}, {}));
  auto* self = const_cast<Optimizer*>(this);  // state_slot hands out references; nothing is changed here
  for (size_t i = 0; i < num_params(); ++i)
    for (const std::string& key : state_keys()) {
      const Tensor& t = self->state_slot(i, key);
      if (t.defined()) out.emplace_back(str("state.", i, ".", key), t);
    }
  return out;
}

void Optimizer::load_state(const NamedTensors& state, bool strict) {
  const size_t n = num_params();
  const std::vector<std::string> keys = state_keys();
  std::set<std::string> found;
  // Check everything before changing anything.
  for (const auto& [name, t] : state) {
    COLT5_CHECK(t.defined(), name_, ": load_state: argument 'state' has an undefined tensor '", name, "'");
    if (name == "step") {
      COLT5_CHECK(t.numel() == 1, name_, ": load_state: argument 'state' expected 'step' with one element, got ",
                  t.shape());
      found.insert(name);
      continue;
    }
    bool ok = false;
    if (name.rfind("state.", 0) == 0) {
      const size_t dot = name.find('.', 6);
      if (dot != std::string::npos && dot > 6) {
        const std::string idx = name.substr(6, dot - 6), key = name.substr(dot + 1);
        bool digits = true;
        for (char c : idx) digits = digits && c >= '0' && c <= '9';
        if (digits && idx.size() < 10) {
          const size_t i = std::stoul(idx);
          for (const auto& k : keys) ok = ok || k == key;
          if (ok) {
            COLT5_CHECK(i < n, name_, ": load_state: argument 'state' names parameter ", i, " of ", n, " ('", name, "')");
            const Shape want = key == "step" ? Shape{} : param_at(i).shape();
            COLT5_CHECK(t.shape() == want, name_, ": load_state: argument 'state' expected '", name, "' of shape ",
                        want, ", got ", t.shape());
          }
        }
      }
    }
    COLT5_CHECK(ok, name_, ": load_state: argument 'state' has an unexpected key '", name, "'");
    found.insert(name);
  }
  if (strict) {
    COLT5_CHECK(found.count("step"), name_, ": load_state: argument 'state' is missing 'step'");
    for (const auto& [name, t] : this->state())
      COLT5_CHECK(found.count(name), name_, ": load_state: argument 'state' is missing '", name, "'");
  }
  for (const auto& [name, t] : state) {
    if (name == "step") {
      steps_ = int64_t(t.item_double());
      continue;
    }
    const size_t dot = name.find('.', 6);
    const size_t i = std::stoul(name.substr(6, dot - 6));
    const std::string key = name.substr(dot + 1);
    Tensor& slot = state_slot(i, key);
    if (key == "step") {
      set_count(i, int64_t(t.item_double()));
    } else {
      const Tensor& p = param_at(i);
      slot = ops::clone(ops::to_device(ops::to_dtype(t.detach(), p.dtype()), p.device()));
    }
  }
}

// ---- SGD ----

namespace {
std::vector<ParamGroup> one_group(TensorList params, double lr, double wd) {
  ParamGroup g;
  g.params = std::move(params);
  g.lr = lr;
  g.weight_decay = wd;
  return {g};
}

void check_sgd(const SGDOptions& o) {
  check_lr(o.lr, "SGD");
  check_weight_decay(o.weight_decay, "SGD");
  COLT5_CHECK(std::isfinite(o.momentum) && o.momentum >= 0.0, "SGD: argument 'momentum' expected >= 0, got ", o.momentum);
  COLT5_CHECK(std::isfinite(o.dampening), "SGD: argument 'dampening' expected a finite value, got ", o.dampening);
  COLT5_CHECK(!o.nesterov || (o.momentum > 0.0 && o.dampening == 0.0),
              "SGD: argument 'nesterov' expected momentum > 0 and dampening == 0, got momentum ", o.momentum,
              " and dampening ", o.dampening);
}

void check_adamw(const AdamWOptions& o) {
  check_lr(o.lr, "AdamW");
  check_weight_decay(o.weight_decay, "AdamW");
  COLT5_CHECK(o.beta1 >= 0.0 && o.beta1 < 1.0, "AdamW: argument 'beta1' expected a value in [0, 1), got ", o.beta1);
  COLT5_CHECK(o.beta2 >= 0.0 && o.beta2 < 1.0, "AdamW: argument 'beta2' expected a value in [0, 1), got ", o.beta2);
  COLT5_CHECK(std::isfinite(o.eps) && o.eps > 0.0, "AdamW: argument 'eps' expected a finite value > 0, got ", o.eps);
}

std::vector<ParamGroup> fill_lr(std::vector<ParamGroup> groups, double lr) {
  for (auto& g : groups)
    if (g.lr < 0.0) g.lr = lr;
  return groups;
}
}  // namespace

SGD::SGD(TensorList params, const SGDOptions& opts)
    : Optimizer((check_sgd(opts), one_group(std::move(params), opts.lr, opts.weight_decay)), "SGD"), opts_(opts) {
  momentum_.resize(num_params());
}

SGD::SGD(std::vector<ParamGroup> groups, const SGDOptions& opts)
    : Optimizer((check_sgd(opts), fill_lr(std::move(groups), opts.lr)), "SGD"), opts_(opts) {
  momentum_.resize(num_params());
}

Tensor& SGD::state_slot(size_t i, const std::string& key) {
  COLT5_CHECK(key == "momentum_buffer" && i < momentum_.size(), "SGD: unknown state '", key, "' of parameter ", i);
  return momentum_[i];
}

void SGD::step() {
  NoGradGuard no_grad;
  for_each_with_grad([&](size_t i, ParamGroup& g, Tensor& p) {
    const Tensor pd = p.detach();
    Tensor d = p.grad().detach();
    if (g.weight_decay != 0.0) d = d + pd * g.weight_decay;
    if (opts_.momentum != 0.0) {
      Tensor& buf = momentum_[i];
      if (!buf.defined()) {
        buf = ops::clone(d);
      } else {
        assign(buf, buf * opts_.momentum + d * (1.0 - opts_.dampening));
      }
      d = opts_.nesterov ? d + buf * opts_.momentum : buf;
    }
    assign(p, pd - d * g.lr);
  });
  ++steps_;
}

// ---- AdamW ----

AdamW::AdamW(TensorList params, const AdamWOptions& opts)
    : Optimizer((check_adamw(opts), one_group(std::move(params), opts.lr, opts.weight_decay)), "AdamW"), opts_(opts) {
  exp_avg_.resize(num_params());
  exp_avg_sq_.resize(num_params());
  count_.resize(num_params());
}

AdamW::AdamW(std::vector<ParamGroup> groups, const AdamWOptions& opts)
    : Optimizer((check_adamw(opts), fill_lr(std::move(groups), opts.lr)), "AdamW"), opts_(opts) {
  exp_avg_.resize(num_params());
  exp_avg_sq_.resize(num_params());
  count_.resize(num_params());
}

Tensor& AdamW::state_slot(size_t i, const std::string& key) {
  COLT5_CHECK(i < exp_avg_.size(), "AdamW: state of parameter ", i, " out of range");
  if (key == "step") return count_[i];
  if (key == "exp_avg") return exp_avg_[i];
  if (key == "exp_avg_sq") return exp_avg_sq_[i];
  fail(str("AdamW: unknown state '", key, "'"));
}

void AdamW::place_state(Device d) {
  if (steps_dev_.defined() && steps_dev_.device() == d) return;
  // First use, or the parameters moved: the counters go along (their values kept).
  Tensor steps = steps_dev_.defined() ? ops::to_device(steps_dev_, d) : ops::to_device(zeros({int64_t(num_params())}, DType::Int64), d);
  steps_dev_ = ops::clone(steps);
  for (size_t i = 0; i < count_.size(); ++i)
    if (count_[i].defined()) count_[i] = count_view(i);
  lr_dev_ = Tensor();
  lr_staged_.clear();
}

Tensor AdamW::count_view(size_t i) const { return Tensor::make_view(steps_dev_, {}, {}, int64_t(i)); }

void AdamW::set_count(size_t i, int64_t value) {
  place_state(param_at(i).device());
  count_[i] = count_view(i);
  ops::copy_(count_[i], from_vector<int64_t>({value}, {}));
}

void AdamW::stage_lr() {
  if (num_params() == 0) return;
  place_state(param_at(0).device());
  std::vector<double> lrs;
  for (const auto& g : groups_) lrs.push_back(g.lr);
  if (lr_dev_.defined() && lrs == lr_staged_) return;
  const Tensor host = from_vector<double>(lrs, {int64_t(lrs.size())});
  if (!lr_dev_.defined()) lr_dev_ = ops::clone(ops::to_device(host, steps_dev_.device()));
  else ops::copy_(lr_dev_, host);  // in place: a captured graph keeps reading this address
  lr_staged_ = lrs;
}

void AdamW::step() {
  NoGradGuard no_grad;
  // One list per (device, dtype) of the parameters that have a gradient (usually one list).
  std::map<std::pair<int, int>, AdamWLists> lists;
  for_each_with_grad([&](size_t i, ParamGroup& g, Tensor& p) {
    COLT5_CHECK(p.is_contiguous(), "AdamW: argument 'params' expected contiguous parameters");
    if (!exp_avg_[i].defined()) exp_avg_[i] = zeros(p.shape(), p.dtype(), p.device());
    if (!exp_avg_sq_[i].defined()) exp_avg_sq_[i] = zeros(p.shape(), p.dtype(), p.device());
    if (!count_[i].defined()) {
      place_state(p.device());
      count_[i] = count_view(i);
    }
    AdamWLists& l = lists[{int(p.device().type) * 1024 + p.device().index, int(p.dtype())}];
    l.params.push_back(p.detach());
    l.grads.push_back(ops::contiguous(ops::to_dtype(p.grad().detach(), p.dtype())));
    l.exp_avg.push_back(exp_avg_[i]);
    l.exp_avg_sq.push_back(exp_avg_sq_[i]);
    l.lr_index.push_back(int64_t(&g - groups_.data()));  // the group's row of lr_dev_
    l.step_index.push_back(int64_t(i));
    l.weight_decay.push_back(g.weight_decay);
  });
  if (!lists.empty()) {
    COLT5_CHECK(lists.size() == 1 || lists.begin()->first.first == lists.rbegin()->first.first,
                "AdamW: argument 'params' expected parameters on one device");
    stage_lr();
    const AdamWConsts c{opts_.beta1, opts_.beta2, opts_.eps};
    for (auto& [key, l] : lists) ops::adamw_multi(l, lr_dev_, steps_dev_, c);
  }
  ++steps_;
}

// ---- clipping and schedule ----

Tensor clip_grad_norm_(const TensorList& params, double max_norm) {
  COLT5_CHECK(max_norm > 0.0 && !std::isnan(max_norm),
              "clip_grad_norm: argument 'max_norm' expected a value > 0 (+infinity: no clipping), got ", max_norm);
  NoGradGuard no_grad;
  TensorList grads;  // contiguous (a strided gradient is copied, scaled, and written back)
  std::vector<std::pair<Tensor, Tensor>> copies;
  for (const Tensor& p : params) {
    if (!p.defined() || !p.grad().defined()) continue;
    const Tensor g = p.grad().detach();
    grads.push_back(ops::contiguous(g));
    if (grads.back().impl() != g.impl()) copies.emplace_back(g, grads.back());
  }
  if (grads.empty()) return zeros({}, DType::Float64);
  check_same_device(grads, "clip_grad_norm");
  std::map<int, TensorList> by_dtype;  // the list ops take one dtype at a time
  for (const Tensor& g : grads) by_dtype[int(g.dtype())].push_back(g);
  Tensor total;
  for (const auto& [dtype, list] : by_dtype) {
    const Tensor sq = ops::sum_of_squares_multi(list);
    total = total.defined() ? total + sq : sq;
  }
  const Tensor norm = sqrt(total);
  if (std::isinf(max_norm)) return norm;
  const Tensor coef = clamp_max(full({}, max_norm, DType::Float64, norm.device()) / (norm + 1e-6), 1.0);
  for (auto& [dtype, list] : by_dtype) ops::scale_multi_(list, coef);
  for (auto& [g, c] : copies) assign(g, c);
  return norm;
}

double clip_grad_norm(const TensorList& params, double max_norm) { return clip_grad_norm_(params, max_norm).item_double(); }

double warmup_cosine_lr(int64_t step, int64_t warmup, int64_t total, double base_lr, double min_lr) {
  COLT5_CHECK(step >= 0, "warmup_cosine_lr: argument 'step' expected >= 0, got ", step);
  COLT5_CHECK(warmup >= 0, "warmup_cosine_lr: argument 'warmup' expected >= 0, got ", warmup);
  COLT5_CHECK(total >= warmup, "warmup_cosine_lr: argument 'total' expected >= warmup (", warmup, "), got ", total);
  check_lr(base_lr, "warmup_cosine_lr");
  COLT5_CHECK(std::isfinite(min_lr) && min_lr >= 0.0 && min_lr <= base_lr,
              "warmup_cosine_lr: argument 'min_lr' expected a value in [0, base_lr = ", base_lr, "], got ", min_lr);
  if (step < warmup) return base_lr * double(step + 1) / double(warmup);
  if (step >= total) return min_lr;
  const double progress = double(step - warmup) / double(total - warmup);
  return min_lr + (base_lr - min_lr) * 0.5 * (1.0 + std::cos(std::numbers::pi * progress));
}

}  // namespace nn
}  // namespace colt5
