#include "nn/module.h"

#include <set>

#include "core/ops/copy.h"

namespace colt5::nn {

Tensor Module::register_parameter(const std::string& name, Tensor t) {
  COLT5_CHECK(t.defined(), "register_parameter: parameter '", name, "' is undefined");
  t = t.detach();
  t.requires_grad_();
  params_.emplace_back(name, t);
  return t;
}

Tensor Module::register_buffer(const std::string& name, Tensor t) {
  COLT5_CHECK(t.defined(), "register_buffer: buffer '", name, "' is undefined");
  t = t.detach();
  buffers_.emplace_back(name, t);
  return t;
}

void Module::collect(const std::string& prefix, NamedTensors* params, NamedTensors* buffers) const {
  if (params)
    for (const auto& [n, t] : params_) params->emplace_back(prefix + n, t);
  if (buffers)
    for (const auto& [n, t] : buffers_) buffers->emplace_back(prefix + n, t);
  for (const auto& [n, m] : children_) m->collect(prefix + n + ".", params, buffers);
}

NamedTensors Module::named_parameters() const {
  NamedTensors out;
  collect("", &out, nullptr);
  return out;
}

TensorList Module::parameters() const {
  TensorList out;
  for (auto& [n, t] : named_parameters()) out.push_back(t);
  return out;
}

NamedTensors Module::named_buffers() const {
  NamedTensors out;
  collect("", nullptr, &out);
  return out;
}

std::vector<std::pair<std::string, Module*>> Module::named_children() const {
  std::vector<std::pair<std::string, Module*>> out;
  for (const auto& [n, m] : children_) out.emplace_back(n, m.get());
  return out;
}

int64_t Module::num_parameters() const {
  int64_t n = 0;
  for (const Tensor& t : parameters()) n += t.numel();
  return n;
}

StateDict Module::state_dict() const {
  StateDict sd;
  NamedTensors all;
  collect("", &all, &all);
  for (auto& [n, t] : all) sd[n] = t.detach();
  return sd;
}

void Module::load_state_dict(const StateDict& sd, bool strict) {
  NamedTensors all;
  collect("", &all, &all);
  std::vector<std::string> missing, wrong_shape;
  std::set<std::string> known;
  for (auto& [name, t] : all) {
    known.insert(name);
    auto it = sd.find(name);
    if (it == sd.end()) {
      missing.push_back(name);
      continue;
    }
    if (it->second.shape() != t.shape()) {
      wrong_shape.push_back(str(name, ": expected ", t.shape(), ", got ", it->second.shape()));
      continue;
    }
  }
  std::vector<std::string> unexpected;
  for (auto& [name, t] : sd)
    if (!known.count(name)) unexpected.push_back(name);
  if (strict) {
    COLT5_CHECK(missing.empty() && unexpected.empty() && wrong_shape.empty(),
                "load_state_dict: the state dict does not match the module: missing keys ", missing,
                ", unexpected keys ", unexpected, ", wrong shapes ", wrong_shape);
  } else {
    COLT5_CHECK(wrong_shape.empty(), "load_state_dict: wrong shapes ", wrong_shape);
  }
  NoGradGuard ng;
  for (auto& [name, t] : all) {
    auto it = sd.find(name);
    if (it == sd.end()) continue;
    Tensor dst = t;
    ops::copy_(dst, it->second);  // in place: casts dtype, crosses devices
  }
}

void Module::zero_grad() {
  for (Tensor& t : parameters()) t.zero_grad();
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [n, m] : children_) m->train(on);
}

void Module::to(Device device) {
  NamedTensors all;
  collect("", &all, &all);
  for (auto& [n, t] : all) {
    if (t.device() == device) continue;
    t.set_data(ops::to_device(t, device));
    t.zero_grad();
  }
}

void Module::to(DType dtype) {
  NamedTensors all;
  collect("", &all, &all);
  for (auto& [n, t] : all) {
    if (!t.is_floating_point() || t.dtype() == dtype) continue;
    t.set_data(ops::to_dtype(t, dtype));
    t.zero_grad();
  }
}

Device Module::device() const {
  auto ps = parameters();
  return ps.empty() ? kCPU : ps[0].device();
}

DType Module::dtype() const {
  for (const Tensor& t : parameters())
    if (t.is_floating_point()) return t.dtype();
  return DType::Float32;
}

}  // namespace colt5::nn
