// The CUDA runtime: transfers, creation and RNG parity with the CPU, long and degenerate
// reductions, the caching allocator, out-of-memory handling, device mixing.
#include <doctest/doctest.h>

#include <cmath>

#include "autograd/ops.h"
#include "tests/gpu/gpu.h"

using namespace colt5;
using colt5::gputest::gpu;

TEST_CASE("gpu: transfers round-trip every dtype, including non-contiguous tensors") {
  COLT5_REQUIRE_GPU();
  Tensor x = arange(0.0, 24.0, 1.0, DType::Float64).reshape({2, 3, 4});
  for (DType dt : {DType::Float32, DType::Float64, DType::Int64, DType::Int32, DType::Bool}) {
    CAPTURE(std::string(dtype_name(dt)));
    Tensor h = x.to(dt);
    Tensor d = h.to(gpu());
    CHECK(d.device() == gpu());
    CHECK(d.cpu().to(DType::Float64).to_vector<double>() == h.to(DType::Float64).to_vector<double>());
    // A transposed view copied on the device, then brought back.
    Tensor t = d.transpose(0, 2).contiguous().cpu();
    CHECK(t.to(DType::Float64).to_vector<double>() == h.transpose(0, 2).contiguous().to(DType::Float64).to_vector<double>());
  }
}

TEST_CASE("gpu: creation and the Philox RNG give the CPU's numbers") {
  COLT5_REQUIRE_GPU();
  for (DType dt : {DType::Float32, DType::Float64}) {
    Generator a(42), b(42);
    CHECK(randn({1000}, dt, kCPU, &a).to(DType::Float64).to_vector<double>() ==
          randn({1000}, dt, gpu(), &b).cpu().to(DType::Float64).to_vector<double>());
    CHECK(rand({777}, dt, kCPU, &a).to(DType::Float64).to_vector<double>() ==
          rand({777}, dt, gpu(), &b).cpu().to(DType::Float64).to_vector<double>());
  }
  Generator a(7), b(7);
  CHECK(randint(-5, 9, {513}, DType::Int64, kCPU, &a).to_vector<int64_t>() ==
        randint(-5, 9, {513}, DType::Int64, gpu(), &b).cpu().to_vector<int64_t>());
  CHECK(arange(3.0, 11.0, 0.5, DType::Float64, gpu()).cpu().to_vector<double>() ==
        arange(3.0, 11.0, 0.5, DType::Float64).to_vector<double>());
  CHECK(full({3, 5}, 2.5, DType::Float32, gpu()).cpu().to_vector<float>() == std::vector<float>(15, 2.5f));
  CHECK(zeros({0, 4}, DType::Float32, gpu()).numel() == 0);
}

TEST_CASE("gpu: reductions of 1M-element rows, columns, empty and size-1 dims") {
  COLT5_REQUIRE_GPU();
  Generator g(3);
  Tensor x = randn({2, 1 << 20}, DType::Float64, kCPU, &g);
  Tensor xd = x.to(gpu());
  CHECK(std::fabs(sum(xd, {1}).cpu().to_vector<double>()[0] - sum(x, {1}).to_vector<double>()[0]) < 1e-9);
  CHECK(amax(xd, {1}).cpu().to_vector<double>() == amax(x, {1}).to_vector<double>());
  CHECK(argmax(xd, 1).cpu().to_vector<int64_t>() == argmax(x, 1).to_vector<int64_t>());
  Tensor lse_d = logsumexp(xd, 1).cpu(), lse_c = logsumexp(x, 1);
  CHECK(std::fabs(lse_d.to_vector<double>()[1] - lse_c.to_vector<double>()[1]) < 1e-10);
  // Reducing the first dim of a long tensor (the column kernel).
  Tensor cols = sum(xd, {0}).cpu();
  CHECK(cols.numel() == (1 << 20));
  Tensor f32 = randn({1 << 20}, DType::Float32, gpu(), &g);
  const double s_gpu = sum(f32).item<float>(), s_cpu = sum(f32.cpu()).item<float>();
  CHECK(std::fabs(s_gpu - s_cpu) <= 1e-5 * std::max(1.0, std::fabs(s_cpu)));
  // Empty and size-1 dims.
  CHECK(sum(zeros({3, 0}, DType::Float32, gpu()), {1}).cpu().to_vector<float>() == std::vector<float>(3, 0.0f));
  CHECK(sum(ones({4, 1}, DType::Float32, gpu()), {1}).cpu().to_vector<float>() == std::vector<float>(4, 1.0f));
  CHECK(sum(zeros({0, 3}, DType::Float32, gpu()), {1}).numel() == 0);
}

TEST_CASE("gpu: the caching allocator reuses blocks and tracks live and peak bytes") {
  COLT5_REQUIRE_GPU();
  synchronize(gpu());
  const size_t base = memory_allocated(gpu());
  reset_peak_memory(gpu());
  void* first = nullptr;
  {
    Tensor a = Tensor::empty({1 << 20}, DType::Float32, gpu());  // 4 MiB
    first = a.raw_data();
    CHECK(memory_allocated(gpu()) >= base + (size_t(4) << 20));
  }
  CHECK(memory_allocated(gpu()) == base);
  CHECK(max_memory_allocated(gpu()) >= base + (size_t(4) << 20));
  {
    Tensor b = Tensor::empty({1 << 20}, DType::Float32, gpu());  // same size class: same block
    CHECK(b.raw_data() == first);
  }
  empty_cache(gpu());
  CHECK(memory_allocated(gpu()) == base);
}

TEST_CASE("gpu: out of memory is a clear error and the allocator stays usable") {
  COLT5_REQUIRE_GPU();
  const int64_t huge = int64_t(1) << 46;  // 256 TiB of float32
  try {
    Tensor t = Tensor::empty({huge}, DType::Float32, gpu());
    FAIL("allocating 256 TiB should have failed");
  } catch (const Error& e) {
    const std::string msg = e.what();
    CHECK(msg.find("out of memory") != std::string::npos);
    CHECK(msg.find("MiB free") != std::string::npos);
  }
  Tensor ok = ones({1000}, DType::Float32, gpu());
  CHECK(sum(ok).item<float>() == 1000.0f);
}

TEST_CASE("gpu: mixing devices in one op is a clear error") {
  COLT5_REQUIRE_GPU();
  Tensor a = ones({3}, DType::Float32, gpu()), b = ones({3});
  CHECK_THROWS_WITH_AS(add(a, b), doctest::Contains("cuda:0"), Error);
  CHECK_THROWS_WITH_AS(where(gt(b, 0.0), a, a), doctest::Contains("device"), Error);
}

TEST_CASE("gpu: a device index that does not exist is a clear error") {
  COLT5_REQUIRE_GPU();
  CHECK_THROWS_WITH_AS(Tensor::empty({2}, DType::Float32, Device(DeviceType::CUDA, 4096)),
                       doctest::Contains("out of range"), Error);
}

TEST_CASE("gpu: sort and topk of long rows (global-memory path) match the CPU exactly, ties and NaN included") {
  COLT5_REQUIRE_GPU();
  for (DType dt : {DType::Float32, DType::Float64}) {
    for (Shape shape : {Shape{3, 10000}, Shape{1, 100000}, Shape{2, 9000, 2}}) {
      CAPTURE(std::string(dtype_name(dt)));
      CAPTURE(shape);
      Generator g(11);
      // Few distinct values (many ties) and some NaNs.
      Tensor x = randint(0, 50, shape, DType::Int64, kCPU, &g).to(dt);
      Tensor nan_mask = lt(rand(shape, DType::Float64, kCPU, &g), 0.01);
      x = where(nan_mask, full({}, NAN, dt), x);
      const int64_t dim = shape.size() == 3 ? 1 : -1;
      for (bool desc : {false, true}) {
        ValuesIndices c = sort(x, dim, desc), d = sort(x.to(gpu()), dim, desc);
        CHECK(d.indices.cpu().to_vector<int64_t>() == c.indices.to_vector<int64_t>());
      }
      const int64_t k = x.size(dim) / 3;
      ValuesIndices c = topk(x, k, dim, true), d = topk(x.to(gpu()), k, dim, true);
      CHECK(d.indices.cpu().to_vector<int64_t>() == c.indices.to_vector<int64_t>());
      Tensor cs_c = cumsum(where(nan_mask, zeros_like(x), x), dim);
      Tensor cs_d = cumsum(where(nan_mask, zeros_like(x), x).to(gpu()), dim).cpu();
      CHECK(cs_d.to(DType::Float64).to_vector<double>() == cs_c.to(DType::Float64).to_vector<double>());
    }
  }
}

TEST_CASE("gpu: softmax rows on every kernel path (cached and vectorised, misaligned, long) match the CPU") {
  COLT5_REQUIRE_GPU();
  Generator g(5);
  for (DType dt : {DType::Float32, DType::Float64}) {
    const double tol = dt == DType::Float32 ? 1e-5 : 1e-12;
    // [37, 4096]: cached + vectorised; narrow(1, 1, 4092): rows start off 16-byte alignment;
    // [3, 1001]: n not a whole number of vectors; [2, 20000]: too long for shared memory.
    Tensor a = randn({37, 4096}, dt, kCPU, &g) * 3.0;
    Tensor b = randn({3, 1001}, dt, kCPU, &g);
    Tensor c = randn({2, 20000}, dt, kCPU, &g);
    for (Tensor x : {a, a.narrow(1, 1, 4092).contiguous(), b, c}) {
      CAPTURE(x.shape());
      for (bool is_log : {false, true}) {
        Tensor yc = is_log ? log_softmax(x, 1) : softmax(x, 1);
        Tensor yd = is_log ? log_softmax(x.to(gpu()), 1) : softmax(x.to(gpu()), 1);
        Tensor diff = abs(yd.cpu() - yc);
        CHECK(amax(diff, {}).item_double() <= tol * std::max(1.0, amax(abs(yc), {}).item_double()));
      }
    }
    // A contiguous view at an odd offset: the data pointer itself is misaligned.
    Tensor flat = randn({1 + 8 * 64}, dt, kCPU, &g);
    Tensor view_c = flat.narrow(0, 1, 8 * 64).view({8, 64});
    Tensor view_d = flat.to(gpu()).narrow(0, 1, 8 * 64).view({8, 64});
    CHECK(amax(abs(softmax(view_d, 1).cpu() - softmax(view_c, 1)), {}).item_double() <= tol);
  }
}
