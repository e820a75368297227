#include "cuda/kernels/common.cuh"

namespace colt5::cuda {

Geom make_geom(const Shape& shape, const Shape& strides) {
  // Merge dim d into d+1 when stepping d once equals stepping d+1 across its whole size.
  Shape sz, st;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;  // size-1 dims never move the offset
    if (!sz.empty() && st.back() == strides[d] * shape[d]) {
      sz.back() *= shape[d];
      st.back() = strides[d];
    } else {
      sz.push_back(shape[d]);
      st.push_back(strides[d]);
    }
  }
  COLT5_CHECK(sz.size() <= size_t(kMaxDims), "cuda: tensors of more than ", kMaxDims,
              " non-mergeable dims are not supported, got shape ", shape, " strides ", strides);
  Geom g{};
  g.ndim = int(sz.size());
  for (size_t d = 0; d < sz.size(); ++d) g.size[d] = sz[d], g.stride[d] = st[d];
  if (g.ndim == 0) {  // a single element
    g.ndim = 1;
    g.size[0] = 1;
    g.stride[0] = 0;
  }
  return g;
}

Geom make_geom(const Tensor& t) { return make_geom(t.shape(), t.strides()); }

DeviceCheck::DeviceCheck(const Tensor& like) : device_(like.device().index) {
  DeviceContext& ctx = context(device_);
  CUDA_CHECK(cudaSetDevice(device_));
  // 4096 launches without a wait: read their verdicts now (inside a graph capture, where the
  // host cannot wait, this throws and the capture fails)
  if (ctx.launch_checks().full()) wait(ctx);
  flag_ = ctx.launch_checks().reserve(device_);
}

void DeviceCheck::defer(std::function<void(int64_t)> raise) {
  DeviceContext& ctx = context(device_);
  ctx.launch_checks().set_raise(flag_, std::move(raise));
  if (sync_after_each_kernel()) wait(ctx);  // COLT5_CUDA_SYNC=1: the error at the op's call
}

cudaStream_t stream_for(const Tensor& t) {
  const int dev = t.device().index;
  CUDA_CHECK(cudaSetDevice(dev));
  return stream(dev);
}

}  // namespace colt5::cuda
