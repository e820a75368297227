// The op dispatch table.
//
// Each op's kernel has one signature and one slot per device type. The CPU reference kernel
// fills the slot at compile time; the CUDA kernel registers itself when the library is built
// with CUDA (see cuda/register.h). Calling a slot that has no kernel for a device is a clear
// error naming the op.
//
//   // in core/ops/softmax.h
//   using SoftmaxFwdFn = void(const Tensor& x, Tensor& y, int64_t dim, bool log);
//   COLT5_KERNEL(softmax_forward, SoftmaxFwdFn, cpu::softmax_forward);
//   // in core/ops/softmax.cpp
//   kernels::softmax_forward(x.device())(x, y, dim, log);
#pragma once

#include "core/device.h"
#include "core/error.h"

namespace colt5 {

template <class Fn>
struct KernelSlot {
  const char* name;
  Fn* fns[kNumDeviceTypes];

  Fn* operator()(Device d) const {
    Fn* f = fns[static_cast<int>(d.type)];
    COLT5_CHECK(f != nullptr, name, ": no kernel for device ", d,
                d.is_cuda() ? " (this build has no CUDA kernels)" : "");
    return f;
  }
  void set(DeviceType t, Fn* f) { fns[static_cast<int>(t)] = f; }
};

}  // namespace colt5

// Declares colt5::kernels::NAME, a KernelSlot<SIG> whose CPU entry is CPU_FN.
// `inline` + constant initialisation: one table across all files, filled before any code runs.
#define COLT5_KERNEL(NAME, SIG, CPU_FN)                                        \
  namespace kernels {                                                          \
  inline ::colt5::KernelSlot<SIG> NAME{#NAME, {&CPU_FN, nullptr}};             \
  }
