// Raw creation kernels: arange and the Philox random draws (core/philox.h has the generator).
#pragma once

#include "core/dispatch.h"
#include "core/tensor.h"

namespace colt5 {

enum class RandomKind : uint8_t { Uniform, Normal, Integer };

namespace cpu {
void arange(Tensor& out, double start, double step);
// out[i] from Philox(seed, counter = offset + i): uniform [0,1), standard normal, or an
// integer in [low, high) (low/high used for Integer only).
void random(Tensor& out, RandomKind kind, uint64_t seed, uint64_t offset, int64_t low, int64_t high);
}  // namespace cpu

using ArangeFn = void(Tensor& out, double start, double step);
using RandomFn = void(Tensor& out, RandomKind kind, uint64_t seed, uint64_t offset, int64_t low, int64_t high);
COLT5_KERNEL(arange, ArangeFn, cpu::arange)
COLT5_KERNEL(random, RandomFn, cpu::random)

}  // namespace colt5
