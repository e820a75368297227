// Creating tensors. Random numbers come from a counter-based Philox generator: element i of a
// draw depends only on (seed, the generator's offset, i), so the CPU and the GPU give the
// same numbers for the same seed.
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace colt5 {

Tensor zeros(const Shape& shape, DType dtype = DType::Float32, Device device = kCPU);
Tensor ones(const Shape& shape, DType dtype = DType::Float32, Device device = kCPU);
Tensor full(const Shape& shape, double value, DType dtype = DType::Float32, Device device = kCPU);
Tensor zeros_like(const Tensor& t);
Tensor ones_like(const Tensor& t);
Tensor full_like(const Tensor& t, double value);
// [start, start+step, ...) up to end (exclusive).
Tensor arange(double start, double end, double step = 1.0, DType dtype = DType::Int64, Device device = kCPU);
Tensor arange(int64_t end, DType dtype = DType::Int64, Device device = kCPU);

class Generator {
public:
  explicit Generator(uint64_t seed = 0) : seed_(seed) {}
  void manual_seed(uint64_t seed) { seed_ = seed; offset_ = 0; }
  uint64_t seed() const { return seed_; }
  uint64_t offset() const { return offset_; }
  void set_offset(uint64_t offset) { offset_ = offset; }
  // Reserve n counters for one draw; returns the first.
  uint64_t advance(uint64_t n) { uint64_t o = offset_; offset_ += n; return o; }

private:
  uint64_t seed_;
  uint64_t offset_ = 0;
};

Generator& default_generator();
void manual_seed(uint64_t seed);  // seeds the default generator

Tensor randn(const Shape& shape, DType dtype = DType::Float32, Device device = kCPU, Generator* gen = nullptr);
Tensor rand(const Shape& shape, DType dtype = DType::Float32, Device device = kCPU, Generator* gen = nullptr);
// Integers uniform in [low, high).
Tensor randint(int64_t low, int64_t high, const Shape& shape, DType dtype = DType::Int64, Device device = kCPU,
               Generator* gen = nullptr);

}  // namespace colt5
