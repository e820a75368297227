#include "autograd/ops/creation.h"

#include <cmath>

#include "core/ops/copy.h"
#include "core/ops/creation.h"

namespace colt5 {

Tensor full(const Shape& shape, double value, DType dtype, Device device) {
  Tensor t = Tensor::empty(shape, dtype, device);
  ops::fill_(t, value);
  return t;
}
Tensor zeros(const Shape& shape, DType dtype, Device device) { return full(shape, 0.0, dtype, device); }
Tensor ones(const Shape& shape, DType dtype, Device device) { return full(shape, 1.0, dtype, device); }
Tensor zeros_like(const Tensor& t) { return zeros(t.shape(), t.dtype(), t.device()); }
Tensor ones_like(const Tensor& t) { return ones(t.shape(), t.dtype(), t.device()); }
Tensor full_like(const Tensor& t, double value) { return full(t.shape(), value, t.dtype(), t.device()); }

Tensor arange(double start, double end, double step, DType dtype, Device device) {
  COLT5_CHECK(step != 0, "arange: argument 'step' must be non-zero");
  COLT5_CHECK(std::isfinite(start) && std::isfinite(end), "arange: arguments 'start' and 'end' must be finite");
  const double span = (end - start) / step;
  const int64_t n = span > 0 ? int64_t(std::ceil(span)) : 0;
  Tensor t = Tensor::empty({n}, dtype, device);
  if (n > 0) kernels::arange(device)(t, start, step);
  return t;
}
Tensor arange(int64_t end, DType dtype, Device device) { return arange(0.0, double(end), 1.0, dtype, device); }

Generator& default_generator() {
  static Generator gen(0);
  return gen;
}
void manual_seed(uint64_t seed) { default_generator().manual_seed(seed); }

namespace {
Tensor draw(const Shape& shape, DType dtype, Device device, Generator* gen, RandomKind kind, int64_t lo, int64_t hi,
            const char* name) {
  if (kind != RandomKind::Integer) {
    COLT5_CHECK(is_floating(dtype), name, ": argument 'dtype' expected float32 or float64, got ", dtype_name(dtype));
  }
  Generator& g = gen ? *gen : default_generator();
  Tensor t = Tensor::empty(shape, dtype, device);
  const uint64_t offset = g.advance(uint64_t(t.numel()));
  if (t.numel() > 0) kernels::random(device)(t, kind, g.seed(), offset, lo, hi);
  return t;
}
}  // namespace

Tensor randn(const Shape& shape, DType dtype, Device device, Generator* gen) {
  return draw(shape, dtype, device, gen, RandomKind::Normal, 0, 0, "randn");
}
Tensor rand(const Shape& shape, DType dtype, Device device, Generator* gen) {
  return draw(shape, dtype, device, gen, RandomKind::Uniform, 0, 0, "rand");
}
Tensor randint(int64_t low, int64_t high, const Shape& shape, DType dtype, Device device, Generator* gen) {
  COLT5_CHECK(low < high, "randint: arguments 'low' (", low, ") and 'high' (", high, ") expected low < high");
  COLT5_CHECK(is_integral(dtype), "randint: argument 'dtype' expected int64 or int32, got ", dtype_name(dtype));
  return draw(shape, dtype, device, gen, RandomKind::Integer, low, high, "randint");
}

}  // namespace colt5
