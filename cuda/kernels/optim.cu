// CUDA kernels of the optimizer's list ops (contracts in core/ops/optim.h; CPU references in
// core/cpu/optim.cpp). Each op is one launch per table of tensors (multi_tensor.cuh).
//   adamw_multi:          one thread per element, the arithmetic of core/ops/optim_math.h in
//                         double; the per-tensor learning rate and step count are read from
//                         device memory, and a second small launch counts the step.
//   sum_of_squares_multi: each block sums x^2 of its chunk in double into partial[chunk]; one
//                         block then adds the partials in a fixed order (deterministic).
//   scale_multi:          x *= factor, the factor read from device memory.
// Elements are independent in the first and last: no races, no atomics.
#include "cuda/kernels/common.cuh"
#include "cuda/kernels/multi_tensor.cuh"
#include "core/ops/optim.h"
#include "core/ops/optim_math.h"

namespace colt5::cuda {

namespace {

// ptr[0..3] = param, grad, exp_avg, exp_avg_sq; the learning-rate index, step index and weight
// decay of table entry k are meta's k-th (a second kernel argument, by value like the table).
struct AdamWMeta {
  int64_t lr_index[kTableTensors];
  int64_t step_index[kTableTensors];
  double weight_decay[kTableTensors];
};

template <class T>
__global__ void adamw_multi_kernel(TensorTable<4> t, AdamWMeta meta, const double* lr, const int64_t* steps,
                                   double beta1, double beta2, double eps) {
  const int k = t.block_tensor[blockIdx.x];
  int64_t begin, end;
  chunk_range(t, blockIdx.x, begin, end);
  const double tt = double(steps[meta.step_index[k]] + 1);
  const AdamWScalars s = adamw_scalars(lr[meta.lr_index[k]], meta.weight_decay[k], beta1, beta2, eps, tt);
  T* p = static_cast<T*>(t.ptr[0][k]);
  const T* g = static_cast<const T*>(t.ptr[1][k]);
  T* m = static_cast<T*>(t.ptr[2][k]);
  T* v = static_cast<T*>(t.ptr[3][k]);
  for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) {
    double pi = double(p[i]), mi = double(m[i]), vi = double(v[i]);
    adamw_element(pi, double(g[i]), mi, vi, s);
    p[i] = T(pi), m[i] = T(mi), v[i] = T(vi);
  }
}

// After every table of the step: steps[step_index[k]] += 1 for the table's tensors (a separate
// launch, because every block of a tensor reads its count first).
__global__ void count_steps_kernel(AdamWMeta meta, int tensors, int64_t* steps) {
  const int k = threadIdx.x;
  if (k < tensors) steps[meta.step_index[k]] += 1;
}

template <class T>
__global__ void sum_of_squares_kernel(TensorTable<1> t, double* partial) {
  __shared__ double shared[kListThreads / 32];
  const int k = t.block_tensor[blockIdx.x];
  int64_t begin, end;
  chunk_range(t, blockIdx.x, begin, end);
  const T* x = static_cast<const T*>(t.ptr[0][k]);
  double acc = 0.0;
  for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) acc += double(x[i]) * double(x[i]);
  acc = block_sum(acc, shared);
  if (threadIdx.x == 0) partial[t.first_block + blockIdx.x] = acc;
}

__global__ void sum_partials_kernel(const double* partial, int64_t n, double* out) {
  __shared__ double shared[kListThreads / 32];
  double acc = 0.0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) acc += partial[i];
  acc = block_sum(acc, shared);
  if (threadIdx.x == 0) *out = acc;
}

template <class T>
__global__ void scale_multi_kernel(TensorTable<1> t, const double* factor) {
  const int k = t.block_tensor[blockIdx.x];
  int64_t begin, end;
  chunk_range(t, blockIdx.x, begin, end);
  T* x = static_cast<T*>(t.ptr[0][k]);
  const double f = *factor;
  for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) x[i] = T(double(x[i]) * f);
}

std::vector<int64_t> numels(const TensorList& xs) {
  std::vector<int64_t> n;
  for (const Tensor& x : xs) n.push_back(x.numel());
  return n;
}

}  // namespace

void adamw_multi(AdamWLists& l, const Tensor& lr, Tensor& steps, const AdamWConsts& c) {
  cudaStream_t stream = stream_for(l.params[0]);
  std::vector<std::array<void*, 4>> ptrs;
  for (size_t i = 0; i < l.params.size(); ++i)
    ptrs.push_back({l.params[i].raw_data(), const_cast<void*>(l.grads[i].raw_data()), l.exp_avg[i].raw_data(),
                    l.exp_avg_sq[i].raw_data()});
  const std::vector<int64_t> n = numels(l.params);
  // Tables in order; a tensor that spans two tables must be counted once, after its last chunk:
  // count each table's tensors whose last chunk it holds.
  visit_floating(l.params[0].dtype(), "adamw_multi", [&]<class T>() {
    for_each_table<4>(ptrs, n, [&](const TensorTable<4>& t, int blocks) {
      AdamWMeta meta{};
      int tensors = 0;
      for (int k = 0; k < kTableTensors && k <= t.block_tensor[blocks - 1]; ++k) {
        const size_t i = size_t(t.index[k]);
        meta.lr_index[k] = l.lr_index[i];
        meta.step_index[k] = l.step_index[i];
        meta.weight_decay[k] = l.weight_decay[i];
        tensors = k + 1;
      }
      adamw_multi_kernel<T><<<blocks, kListThreads, 0, stream>>>(t, meta, lr.data_ptr<double>(),
                                                                  steps.data_ptr<int64_t>(), c.beta1, c.beta2, c.eps);
      COLT5_CHECK_LAUNCH("adamw_multi_kernel", stream);
      // Which of the table's tensors end in it: those whose last chunk is among its blocks.
      AdamWMeta done{};
      int finished = 0;
      for (int k = 0; k < tensors; ++k) {
        const int64_t chunks = (t.numel[k] + kChunk - 1) / kChunk;
        bool last_here = false;
        for (int b = 0; b < blocks; ++b) last_here = last_here || (t.block_tensor[b] == k && t.block_chunk[b] == chunks - 1);
        if (last_here) done.step_index[finished++] = meta.step_index[k];
      }
      if (finished > 0) {
        count_steps_kernel<<<1, kTableTensors, 0, stream>>>(done, finished, steps.data_ptr<int64_t>());
        COLT5_CHECK_LAUNCH("count_steps_kernel", stream);
      }
    });
  });
  // Empty parameters have no chunk, and no table lists them; their steps count all the same.
  AdamWMeta empty{};
  int count = 0;
  auto flush = [&] {
    if (count == 0) return;
    count_steps_kernel<<<1, kTableTensors, 0, stream>>>(empty, count, steps.data_ptr<int64_t>());
    COLT5_CHECK_LAUNCH("count_steps_kernel", stream);
    count = 0;
  };
  for (size_t i = 0; i < n.size(); ++i)
    if (n[i] == 0) {
      empty.step_index[count++] = l.step_index[i];
      if (count == kTableTensors) flush();
    }
  flush();
}

void sum_of_squares_multi(const TensorList& xs, Tensor& out) {
  cudaStream_t stream = stream_for(out);
  const std::vector<int64_t> n = numels(xs);
  const int64_t chunks = list_chunks(n);
  if (chunks == 0) {
    CUDA_CHECK(cudaMemsetAsync(out.raw_data(), 0, sizeof(double), stream));
    return;
  }
  Tensor partial = Tensor::empty({chunks}, DType::Float64, out.device());
  std::vector<std::array<void*, 1>> ptrs;
  for (const Tensor& x : xs) ptrs.push_back({const_cast<void*>(x.raw_data())});
  visit_floating(xs[0].dtype(), "sum_of_squares_multi", [&]<class T>() {
    for_each_table<1>(ptrs, n, [&](const TensorTable<1>& t, int blocks) {
      sum_of_squares_kernel<T><<<blocks, kListThreads, 0, stream>>>(t, partial.data_ptr<double>());
      COLT5_CHECK_LAUNCH("sum_of_squares_kernel", stream);
    });
  });
  sum_partials_kernel<<<1, kListThreads, 0, stream>>>(partial.data_ptr<double>(), chunks, out.data_ptr<double>());
  COLT5_CHECK_LAUNCH("sum_partials_kernel", stream);
}

void scale_multi(TensorList& xs, const Tensor& factor) {
  cudaStream_t stream = stream_for(factor);
  std::vector<std::array<void*, 1>> ptrs;
  for (Tensor& x : xs) ptrs.push_back({x.raw_data()});
  visit_floating(xs[0].dtype(), "scale_multi", [&]<class T>() {
    for_each_table<1>(ptrs, numels(xs), [&](const TensorTable<1>& t, int blocks) {
      scale_multi_kernel<T><<<blocks, kListThreads, 0, stream>>>(t, factor.data_ptr<double>());
      COLT5_CHECK_LAUNCH("scale_multi_kernel", stream);
    });
  });
}

}  // namespace colt5::cuda

COLT5_REGISTER_CUDA(adamw_multi, colt5::cuda::adamw_multi)
COLT5_REGISTER_CUDA(sum_of_squares_multi, colt5::cuda::sum_of_squares_multi)
COLT5_REGISTER_CUDA(scale_multi, colt5::cuda::scale_multi)
