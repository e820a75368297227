// Module: the base of every layer. A module owns named parameters (trainable leaves), named
// buffers (state that is saved but not trained) and named child modules, so that the full
// names of its tensors — "light_ff.1.weight", "heavy_attn.null_kv", "q_router.routing_token" —
// are exactly the PyTorch reference's state_dict() keys, and checkpoints move between the two.
//
// Parameters are registered as Tensor handles; a module keeps the same handle in its own field,
// and whole-module operations (load_state_dict, to(device)) change the tensors in place
// (Tensor::set_data), so fields and registry never disagree.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "autograd/ops.h"

namespace colt5::nn {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;
using StateDict = std::map<std::string, Tensor>;

class Module {
public:
  virtual ~Module() = default;
  Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // ---- traversal (depth-first, registration order; names joined with '.') ----
  NamedTensors named_parameters() const;
  TensorList parameters() const;
  NamedTensors named_buffers() const;
  std::vector<std::pair<std::string, Module*>> named_children() const;
  int64_t num_parameters() const;  // total elements

  // ---- state ----
  // Parameters and buffers under their full names.
  StateDict state_dict() const;
  // Copy every tensor of `sd` into the module (dtype converted to the parameter's). strict:
  // a missing key, an unexpected key or a wrong shape is an Error listing what is wrong.
  void load_state_dict(const StateDict& sd, bool strict = true);

  void zero_grad();
  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }
  // Move / convert every parameter and buffer in place (grads are dropped).
  void to(Device device);
  void to(DType dtype);
  Device device() const;  // of the first parameter (cpu if none)
  DType dtype() const;    // of the first floating parameter (float32 if none)

protected:
  // Registration, for constructors. Parameters become leaves that require grad.
  Tensor register_parameter(const std::string& name, Tensor t);
  Tensor register_buffer(const std::string& name, Tensor t);
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> m) {
    children_.emplace_back(name, m);
    return m;
  }

private:
  void collect(const std::string& prefix, NamedTensors* params, NamedTensors* buffers) const;
  NamedTensors params_, buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
};

// nn.Sequential: children named "0", "1", ... in order. Holds modules of any type; each layer's
// forward is called by whoever owns the Sequential (signatures differ between layers).
class Sequential : public Module {
public:
  template <class M>
  std::shared_ptr<M> push_back(std::shared_ptr<M> m) {
    return register_module(std::to_string(size_++), std::move(m));
  }
  int64_t size() const { return size_; }

private:
  int64_t size_ = 0;
};

}  // namespace colt5::nn
