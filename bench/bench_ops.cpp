// GPU op benchmark: achieved bandwidth of memory-bound ops next to a device-to-device copy
// measured in the same run, and the TFLOP/s of a large float32 GEMM.
//
// Floors (H100 SXM: ~3.35 TB/s HBM3 by datasheet, ~3.0 TB/s measured copy; FP32 non-tensor
// ~67 TFLOP/s by datasheet):
//   add     [64M] f32: 3 x 256 MiB moved (a, b read, out written)     -> ~0.27 ms at 3 TB/s
//   sum     [16384, 4096] f32 over dim 1: 256 MiB read                 -> ~0.09 ms
//   softmax [16384, 4096] f32: 256 MiB read + 256 MiB written          -> ~0.18 ms
//   rms_norm[16384, 4096] f32: 256 MiB read + 256 MiB written          -> ~0.18 ms
//   gemm 4096^3 f32 (TF32 off): 137.4 GFLOP                           -> ~2.1 ms at 67 TFLOP/s
// Bandwidth counts the bytes an ideal kernel must move (each input read once, each output
// written once). Timing: CUDA events around each call, 5 warm-ups, median of 30.
#include <cuda_runtime.h>

#include <cstdio>
#include <functional>
#include <vector>

#include "autograd/ops.h"
#include "bench/timing.h"
#include "core/backend.h"
#include "cuda/check.h"
#include "cuda/context.h"

using namespace colt5;

namespace {

// Median of `reps` CUDA-event timings after `warmup` calls (bench/timing.h).
double median_ms(const std::function<void()>& f, Device dev, int warmup = 5, int reps = 30) {
  return bench::time_calls(dev, f, warmup, reps).median_ms;
}

}  // namespace

int main() {
  if (!cuda_is_available()) {
    std::printf("bench_ops: no CUDA device available\n");
    return 1;
  }
  const Device dev(DeviceType::CUDA, 0);
  cudaStream_t s = cuda::stream(0);
  NoGradGuard no_grad;
  cudaDeviceProp prop{};
  CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  std::printf("device: %s, TF32 %s\n", prop.name, allow_tf32() ? "on" : "off");

  const int64_t N = int64_t(64) << 20, rows = 16384, cols = 4096;
  const double mib = double(N) * 4;  // bytes of one 64M-float tensor
  Generator g(1);
  Tensor a = randn({N}, DType::Float32, dev, &g), b = randn({N}, DType::Float32, dev, &g);
  Tensor copy_dst = Tensor::empty({N}, DType::Float32, dev);
  Tensor x2 = a.view({rows, cols});
  Tensor gamma = randn({cols}, DType::Float32, dev, &g);

  const double t_copy = median_ms([&] {
    CUDA_CHECK(cudaMemcpyAsync(copy_dst.raw_data(), a.raw_data(), size_t(mib), cudaMemcpyDeviceToDevice, s));
  }, dev);
  const double bw_copy = 2 * mib / (t_copy * 1e-3) / 1e9;

  struct Row {
    const char* name;
    const char* shape;
    double bytes;
    std::function<void()> f;
  };
  std::vector<Row> rows_ = {
      {"add", "[64M]", 3 * mib, [&] { Tensor c = a + b; }},
      {"sum (row)", "[16384, 4096] dim 1", mib, [&] { Tensor c = sum(x2, {1}); }},
      {"softmax", "[16384, 4096] dim 1", 2 * mib, [&] { Tensor c = softmax(x2, 1); }},
      {"rms_norm", "[16384, 4096]", 2 * mib, [&] { Tensor c = rms_norm(x2, gamma); }},
  };
  std::printf("\n| op | shape | median ms | GB/s | vs copy |\n|---|---|---:|---:|---:|\n");
  std::printf("| copy (cudaMemcpy D2D) | [64M] f32 | %.3f | %.0f | 100%% |\n", t_copy, bw_copy);
  for (const Row& r : rows_) {
    const double t = median_ms(r.f, dev);
    const double bw = r.bytes / (t * 1e-3) / 1e9;
    std::printf("| %s | %s f32 | %.3f | %.0f | %.0f%% |\n", r.name, r.shape, t, bw, 100 * bw / bw_copy);
  }
  const int64_t M = 4096;
  Tensor ga = randn({M, M}, DType::Float32, dev, &g), gb = randn({M, M}, DType::Float32, dev, &g);
  for (bool tf32 : {false, true}) {
    set_allow_tf32(tf32);
    const double t = median_ms([&] { Tensor c = matmul(ga, gb); }, dev, 3, 20);
    std::printf("| gemm%s | 4096^3 f32 | %.3f | %.1f TFLOP/s | |\n", tf32 ? " (TF32 on)" : "", t,
                2.0 * M * M * M / (t * 1e-3) / 1e12);
  }
  set_allow_tf32(false);
  return 0;
}
