// Bad input across the library: every case must throw colt5::Error (never crash or corrupt
// memory) with a message that names the argument, the shape or the device involved.
// Op-specific bad inputs live next to each op group's tests.
#include <doctest/doctest.h>

#include "tests/fake_cuda.h"

#include <cstdlib>
#include <cstring>

#include "autograd/ops.h"
#include "core/backend.h"

using namespace colt5;
using colt5::testing::FakeCudaScope;

namespace {

}  // namespace

TEST_CASE("bad input: shapes that do not broadcast") {
  Tensor a = ones({2, 3}), b = ones({4}), c = ones({3, 2});
  CHECK_THROWS_AS(add(a, b), Error);
  CHECK_THROWS_WITH_AS(add(a, b), doctest::Contains("[2, 3]"), Error);
  CHECK_THROWS_WITH_AS(add(a, b), doctest::Contains("[4]"), Error);
  CHECK_THROWS_WITH_AS(mul(a, c), doctest::Contains("broadcast"), Error);
  CHECK_THROWS_WITH_AS(sub(a, c), doctest::Contains("sub"), Error);
  CHECK_THROWS_AS(div(ones({2, 1, 3}), ones({4, 2})), Error);
  CHECK_THROWS_AS(where(ones({2}).to(DType::Bool), ones({3}), ones({3})), Error);
  CHECK_THROWS_WITH_AS(masked_fill(ones({2, 3}), ones({2, 4}).to(DType::Bool), 0.0), doctest::Contains("mask"), Error);
  CHECK_THROWS_WITH_AS(a.expand({4, 3}), doctest::Contains("[2, 3]"), Error);
  // Broadcasting that would enlarge the input of masked_fill.
  CHECK_THROWS_AS(masked_fill(ones({3}), ones({2, 3}).to(DType::Bool), 0.0), Error);
}

TEST_CASE("bad input: wrong dtypes") {
  Tensor i = arange(4);
  CHECK_THROWS_AS(exp(i), Error);
  CHECK_THROWS_WITH_AS(exp(i), doctest::Contains("'x'"), Error);
  CHECK_THROWS_WITH_AS(log(i), doctest::Contains("int64"), Error);
  CHECK_THROWS_WITH_AS(sigmoid(from_vector<bool>({true}, {1})), doctest::Contains("bool"), Error);
  // Mixed dtypes in a binary op name both arguments.
  CHECK_THROWS_WITH_AS(add(ones({2}), ones({2}, DType::Float64)), doctest::Contains("'a'"), Error);
  CHECK_THROWS_WITH_AS(add(ones({2}), ones({2}, DType::Float64)), doctest::Contains("float64"), Error);
  CHECK_THROWS_WITH_AS(where(ones({2}), ones({2}), ones({2})), doctest::Contains("cond"), Error);
  CHECK_THROWS_WITH_AS(logical_and(i, i), doctest::Contains("bool"), Error);
  CHECK_THROWS_AS(add(from_vector<bool>({true}, {1}), from_vector<bool>({true}, {1})), Error);
  // Reductions and creation.
  CHECK_THROWS_AS(mean(i), Error);
  CHECK_THROWS_WITH_AS(rand({2}, DType::Int32), doctest::Contains("dtype"), Error);
}

TEST_CASE("bad input: reshape and views to impossible geometry") {
  Tensor t = arange(6).reshape({2, 3});
  CHECK_THROWS_AS(t.reshape({4}), Error);
  CHECK_THROWS_WITH_AS(t.reshape({4}), doctest::Contains("[4]"), Error);
  CHECK_THROWS_WITH_AS(t.reshape({4, -1}), doctest::Contains("6 elements"), Error);
  CHECK_THROWS_WITH_AS(t.reshape({-1, -1}), doctest::Contains("-1"), Error);
  CHECK_THROWS_AS(t.reshape({-2, 3}), Error);
  CHECK_THROWS_WITH_AS(t.t().view({6}), doctest::Contains("view"), Error);  // needs a copy
  CHECK_THROWS_WITH_AS(t.permute({0, 0}), doctest::Contains("dims"), Error);
  CHECK_THROWS_AS(t.permute({1}), Error);
  CHECK_THROWS_WITH_AS(t.transpose(0, 2), doctest::Contains("dim"), Error);
  CHECK_THROWS_AS(t.squeeze(5), Error);
  CHECK_THROWS_AS(t.unsqueeze(4), Error);
}

TEST_CASE("bad input: narrow and select out of bounds") {
  Tensor t = arange(12).reshape({3, 4});
  CHECK_THROWS_AS(t.narrow(1, 2, 3), Error);
  CHECK_THROWS_WITH_AS(t.narrow(1, 2, 3), doctest::Contains("'start'"), Error);
  CHECK_THROWS_WITH_AS(t.narrow(1, 2, 3), doctest::Contains("[3, 4]"), Error);
  CHECK_THROWS_AS(t.narrow(0, 0, -1), Error);
  CHECK_THROWS_AS(t.narrow(0, 4, 0), Error);
  CHECK_THROWS_AS(t.narrow(0, -5, 1), Error);
  CHECK_THROWS_WITH_AS(t.narrow(2, 0, 1), doctest::Contains("dim"), Error);
  CHECK_THROWS_WITH_AS(t.select(0, 3), doctest::Contains("'index'"), Error);
  CHECK_THROWS_AS(t.select(1, -5), Error);
  CHECK_NOTHROW(t.narrow(1, 4, 0));  // an empty window at the end is fine
  CHECK(t.select(1, -1).to_vector<int64_t>() == std::vector<int64_t>{3, 7, 11});
}

TEST_CASE("bad input: backward misuse") {
  Tensor x = ones({3}, DType::Float64);
  x.requires_grad_();
  Tensor y = sum(exp(x));
  y.backward();
  CHECK_THROWS_AS(y.backward(), Error);
  CHECK_THROWS_WITH_AS(y.backward(), doctest::Contains("retain_graph"), Error);

  Tensor z = exp(x);
  CHECK_THROWS_AS(z.backward(), Error);
  CHECK_THROWS_WITH_AS(z.backward(), doctest::Contains("'grad'"), Error);
  CHECK_THROWS_WITH_AS(z.backward(ones({2}, DType::Float64)), doctest::Contains("[3]"), Error);
  CHECK_THROWS_AS(ones({3}).requires_grad_().backward(), Error);  // non-scalar leaf without grad
  CHECK_THROWS_AS(arange(3).requires_grad_(), Error);
}

TEST_CASE("bad input: a CUDA tensor without a CUDA backend or without a GPU") {
  const bool have_backend = has_backend(DeviceType::CUDA);
  if (have_backend && backend_for(cuda_device(0)).device_count() > 0) {
    MESSAGE("skipped: this build has CUDA and the machine a GPU");
    return;
  }
  CHECK_THROWS_AS(Tensor::empty({2, 3}, DType::Float32, cuda_device(0)), Error);
  CHECK_THROWS_AS(ones({2}).cuda(), Error);
  CHECK_THROWS_AS(randn({2}, DType::Float32, cuda_device(0)), Error);
  CHECK_THROWS_WITH_AS(Tensor::empty({2, 3}, DType::Float32, cuda_device(0)), doctest::Contains("cuda:0"), Error);
  if (have_backend) {  // a CUDA build on a machine without a GPU (no driver or no device)
    CHECK_THROWS_WITH_AS(ones({2}).cuda(), doctest::Contains("no CUDA device is available"), Error);
    return;
  }
  // A build without CUDA says so, naming the device.
  CHECK_THROWS_WITH_AS(Tensor::empty({2, 3}, DType::Float32, cuda_device(0)), doctest::Contains("CUDA"), Error);
  CHECK_THROWS_WITH_AS(Tensor::empty({2}, DType::Float32, cuda_device(1)), doctest::Contains("cuda:1"), Error);
  CHECK_THROWS_WITH_AS(ones({2}).cuda(), doctest::Contains("CUDA"), Error);
  CHECK_THROWS_WITH_AS(zeros({2}, DType::Float32, Device("cuda")), doctest::Contains("CUDA"), Error);
  CHECK_THROWS_WITH_AS(randn({2}, DType::Float32, cuda_device(0)), doctest::Contains("CUDA"), Error);
}

TEST_CASE("bad input: tensors on different devices in one op") {
  const bool had_cuda = has_backend(DeviceType::CUDA);
  {
    FakeCudaScope scope;
    CHECK(has_backend(DeviceType::CUDA));
    Tensor cpu_t = ones({2, 3});
    Tensor cuda_t;
    try {
      cuda_t = Tensor::empty({2, 3}, DType::Float32, cuda_device(0));
    } catch (const Error& e) {
      MESSAGE(std::string("skipped: no usable CUDA device: ").append(e.what()));
      return;
    }
    CHECK(cuda_t.device() == cuda_device(0));
    CHECK_THROWS_AS(add(cpu_t, cuda_t), Error);
    CHECK_THROWS_WITH_AS(add(cpu_t, cuda_t), doctest::Contains("cpu"), Error);
    CHECK_THROWS_WITH_AS(add(cpu_t, cuda_t), doctest::Contains("cuda:0"), Error);
    CHECK_THROWS_WITH_AS(add(cpu_t, cuda_t), doctest::Contains("add"), Error);
    CHECK_THROWS_WITH_AS(mul(cuda_t, cpu_t), doctest::Contains("cuda:0"), Error);
    CHECK_THROWS_WITH_AS(where(ones({2, 3}).to(DType::Bool), cpu_t, cuda_t), doctest::Contains("cuda:0"), Error);
    // A CUDA upstream gradient for a CPU output.
    Tensor x = ones({2, 3});
    x.requires_grad_();
    Tensor y = x * 2.0;
    CHECK_THROWS_WITH_AS(y.backward(cuda_t), doctest::Contains("device"), Error);
  }
  // The fake backend is gone again (or the real one is still there).
  CHECK(has_backend(DeviceType::CUDA) == had_cuda);
}
