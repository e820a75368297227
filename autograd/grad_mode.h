// Grad mode: whether differentiable ops record graph nodes. Thread-local, like torch's.
#pragma once

namespace colt5 {

bool grad_enabled();
void set_grad_enabled(bool on);

// Disable graph recording in a scope (evaluation, optimizer steps, backward formulas).
class NoGradGuard {
public:
  NoGradGuard() : prev_(grad_enabled()) { set_grad_enabled(false); }
  ~NoGradGuard() { set_grad_enabled(prev_); }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

private:
  bool prev_;
};

}  // namespace colt5
