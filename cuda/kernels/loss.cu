// CUDA cross-entropy (contract and math: core/ops/loss.h). For row n with target t:
//   lse = m + log sum_c exp(logits[n, c] - m),  m = max_c logits[n, c]
//   forward:  loss[n] = lse - logits[n, t]                    (0 for an ignored row)
//   backward: glogits[n, c] = scale * (exp(logits[n, c] - lse) - [c == t])  (0 for an ignored row)
// scale (= g / count) is read on the device, so there is no host round trip.
//
// One block per row (grid-stride over rows when there are more rows than blocks); the threads
// stride over the C classes, so rows of any length work; the row max and the sum are block-wide
// trees in shared memory, in a fixed order (deterministic, no atomics on floating values).
// Float rows accumulate in double, as on the CPU.
//
// Targets: a target that is neither ignore_index nor in [0, C) is never used as an index; the
// block raises the DeviceCheck flag instead and writes zeros. The flag is read at the host's next
// wait (cuda/context.h: DeferredChecks); when it is set the targets are scanned again on the
// host (an error path only), so that the error names the first bad row with the CPU kernel's
// exact message, whatever the order in which the blocks ran.
#include <cmath>
#include <string>
#include <vector>

#include "core/ops/copy.h"
#include "core/ops/loss.h"
#include "cuda/kernels/common.cuh"

namespace colt5::cuda {

namespace {

constexpr int kMaxThreads = 512;         // threads per row block (a power of two)
constexpr int64_t kMaxRowBlocks = 65535;  // more rows than this: blocks loop over rows

// Block reductions: block_reduce / MaxOp / SumOp in common.cuh.

// logsumexp of row[0..C), in every thread of the block; -inf for a row whose max is -inf (as
// the CPU's row_logsumexp). The early return depends only on block-wide values (no divergence
// around the barriers).
template <class A, class T>
__device__ A block_logsumexp(const T* row, int64_t C, A* shared) {
  A local = A(-INFINITY);
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) local = fmax(local, A(row[c]));
  const A m = block_reduce(local, shared, MaxOp{});
  if (isinf(m) && m < 0) return m;
  local = 0;
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) local += exp(A(row[c]) - m);
  return m + log(block_reduce(local, shared, SumOp{}));
}

// logits: [N, C], targets: [N], loss: [N]; one block per row.
template <class T>
__global__ void __launch_bounds__(kMaxThreads)
    cross_entropy_forward_kernel(const T* logits, const int64_t* targets, T* loss, int64_t N, int64_t C,
                                 int64_t ignore_index, unsigned long long* flag) {
  using A = acc_t<T>;
  __shared__ A s_red[kMaxThreads];
  for (int64_t r = blockIdx.x; r < N; r += gridDim.x) {  // same trip count in every thread
    const int64_t t = targets[r];                         // the same value in every thread
    if (t == ignore_index || t < 0 || t >= C) {
      if (threadIdx.x == 0) {
        if (t != ignore_index) report(flag, t);
        loss[r] = T(0);
      }
      continue;
    }
    const T* row = logits + r * C;
    const A lse = block_logsumexp(row, C, s_red);
    if (threadIdx.x == 0) loss[r] = T(lse - A(row[t]));
  }
}

// logits, glogits: [N, C], targets: [N], scale: one element; one block per row.
template <class T>
__global__ void __launch_bounds__(kMaxThreads)
    cross_entropy_backward_kernel(const T* logits, const int64_t* targets, const T* scale, T* glogits, int64_t N,
                                  int64_t C, int64_t ignore_index, unsigned long long* flag) {
  using A = acc_t<T>;
  __shared__ A s_red[kMaxThreads];
  const A k = A(scale[0]);  // g / count
  for (int64_t r = blockIdx.x; r < N; r += gridDim.x) {
    const int64_t t = targets[r];
    T* grow = glogits + r * C;
    if (t == ignore_index || t < 0 || t >= C) {
      if (threadIdx.x == 0 && t != ignore_index) report(flag, t);
      for (int64_t c = threadIdx.x; c < C; c += blockDim.x) grow[c] = T(0);
      continue;
    }
    const T* row = logits + r * C;
    const A lse = block_logsumexp(row, C, s_red);
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x)
      grow[c] = T(k * (exp(A(row[c]) - lse) - (c == t ? A(1) : A(0))));
  }
}

// The smallest power of two >= C, between one warp and kMaxThreads: short rows get small blocks.
int row_threads(int64_t C) {
  int t = 32;
  while (t < kMaxThreads && t < C) t *= 2;
  return t;
}

unsigned row_blocks(int64_t rows) { return unsigned(rows < kMaxRowBlocks ? rows : kMaxRowBlocks); }

// Defers the verdict; when a kernel reported a bad target, the targets (contiguous [N] on the
// device) are copied to the host and the CPU kernel's message thrown for the first bad row.
void check_targets(DeviceCheck& chk, const Tensor& targets, int64_t C, int64_t ignore_index) {
  chk.defer([targets, C, ignore_index](int64_t reported) {
    const std::string what =
        str("argument 'targets' expected class indices in [0, ", C, ") or ignore_index (", ignore_index, "), got ");
    const Tensor host = ops::to_device(targets, kCPU);
    const int64_t* v = host.data_ptr<int64_t>();
    for (int64_t n = 0, N = host.numel(); n < N; ++n)
      COLT5_CHECK(v[n] == ignore_index || (v[n] >= 0 && v[n] < C), "cross_entropy: ", what, v[n], " at row ", n);
    fail(str("cross_entropy: ", what, reported));  // the targets changed since: say what was seen
  });
}

}  // namespace

void cross_entropy_forward(const Tensor& logits, const Tensor& targets, Tensor& loss, int64_t ignore_index) {
  const int64_t N = logits.size(0), C = logits.size(1);
  if (N == 0) return;
  cudaStream_t s = stream_for(loss);
  DeviceCheck chk(loss);
  visit_floating(logits.dtype(), "cross_entropy", [&]<class T>() {
    cross_entropy_forward_kernel<T><<<row_blocks(N), row_threads(C), 0, s>>>(
        static_cast<const T*>(logits.raw_data()), static_cast<const int64_t*>(targets.raw_data()),
        static_cast<T*>(loss.raw_data()), N, C, ignore_index, chk.flag());
  });
  COLT5_CHECK_LAUNCH("cross_entropy_forward_kernel", s);
  check_targets(chk, targets, C, ignore_index);
}

void cross_entropy_backward(const Tensor& logits, const Tensor& targets, const Tensor& scale, Tensor& glogits,
                            int64_t ignore_index) {
  const int64_t N = logits.size(0), C = logits.size(1);
  if (N * C == 0) return;
  cudaStream_t s = stream_for(glogits);
  DeviceCheck chk(glogits);
  visit_floating(logits.dtype(), "cross_entropy_backward", [&]<class T>() {
    cross_entropy_backward_kernel<T><<<row_blocks(N), row_threads(C), 0, s>>>(
        static_cast<const T*>(logits.raw_data()), static_cast<const int64_t*>(targets.raw_data()),
        static_cast<const T*>(scale.raw_data()), static_cast<T*>(glogits.raw_data()), N, C, ignore_index,
        chk.flag());
  });
  COLT5_CHECK_LAUNCH("cross_entropy_backward_kernel", s);
  check_targets(chk, targets, C, ignore_index);
}

}  // namespace colt5::cuda

COLT5_REGISTER_CUDA(cross_entropy_forward, colt5::cuda::cross_entropy_forward)
COLT5_REGISTER_CUDA(cross_entropy_backward, colt5::cuda::cross_entropy_backward)
