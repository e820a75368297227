// CUDA kernels for gather and scatter / scatter_add (contracts and notation: core/ops/indexing.h).
//   gather:   out[p] = x[p with p[dim] := index[p]]               for every position p of index
//   scatter:  out[p with p[dim] := index[p]] (+)= src[p]           in row-major order of p
//
// gather: one thread per output element (grid-stride loop); reads only, so no ordering matters.
//
// scatter: one thread per column, a column being a position of index's shape outside dim. The
// destinations of two columns never coincide (they differ in a dim other than dim), so the
// threads never write the same element. Each thread walks j = 0, 1, ... along dim: duplicate
// destinations inside a column are added (scatter_add) or overwritten (scatter, the last j wins)
// in increasing j, the order of the CPU kernel's row-major walk. There are no atomics on the
// values, and the sums are formed in the element type with the same operands in the same order
// as on the CPU, so the results are bit-identical.
//
// scatter, rows of one index: when index does not change along the dims after dim (an index
// expanded over the feature columns: an embedding's or a routed gather's backward), every
// column of a row o (the dims before dim) walks the same list index[o, 0..len). One thread per
// column would then be a long serial loop over few columns (the embedding's backward: 128
// columns, len = all tokens). Instead each row's list is sorted (stable: equal indices keep
// increasing j) and one thread per (row, segment start, column) handles one destination: it
// walks the segment of its index in increasing j, adding (scatter_add) or keeping the last
// (scatter) in the element type, the same operands in the same order as the serial walk, so the
// results are bit-identical to it. Distinct indices (routing) make every thread independent.
//
// Offsets: the column's offset in each tensor comes from a Geom of index's shape with dim set to
// size 1 (or, for gather, x's strides with the stride at dim zeroed); index * stride[dim] then
// picks the element along dim.
//
// Indices outside [0, size at dim) are never read or written through: the thread reports the
// value to a DeviceCheck flag (gather writes 0 to its output element) and skips it. The flag is
// read at the host's next wait (cuda/context.h: DeferredChecks), not after every launch; when
// set, the index is copied to the host (an error path only) and scanned in row-major order, so
// that the error carries the CPU kernel's exact message with the same first bad value,
// whatever order the threads ran in. It is thrown from that wait (a copy to the host, e.g. the
// loss value, or synchronize()); with COLT5_CUDA_SYNC=1 from the op's own call.
#include <string>
#include <type_traits>

#include "core/ops/copy.h"
#include "core/ops/indexing.h"
#include "core/ops/sort.h"
#include "cuda/kernels/common.cuh"

namespace colt5::cuda {

namespace {

constexpr int kThreads = 256;

// x: any strides (xg: index's shape with x's strides, 0 at dim); index: any strides (ig);
// out: contiguous of index's shape, n elements.
template <class T>
__global__ void gather_kernel(const T* x, Geom xg, int64_t size, int64_t step, const int64_t* index, Geom ig,
                              T* out, int64_t n, unsigned long long* flag) {
  for (int64_t p = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; p < n; p += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = index[offset_of(ig, p)];
    if (i < 0 || i >= size) {
      report(flag, i);
      out[p] = T(0);
      continue;
    }
    out[p] = x[offset_of(xg, p) + i * step];
  }
}

// Columns: index's shape with dim set to 1 (cols of them), seen with the strides of index (ig),
// src (sg) and out (og); len = index's size at dim; *_step = each tensor's stride at dim.
template <class T>
__global__ void scatter_kernel(T* out, Geom og, int64_t size, int64_t out_step, const int64_t* index, Geom ig,
                               int64_t index_step, const T* src, Geom sg, int64_t src_step, int64_t cols,
                               int64_t len, bool accumulate, unsigned long long* flag) {
  for (int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; c < cols; c += int64_t(gridDim.x) * blockDim.x) {
    const int64_t io = offset_of(ig, c), so = offset_of(sg, c), oo = offset_of(og, c);
    for (int64_t j = 0; j < len; ++j) {
      const int64_t i = index[io + j * index_step];
      if (i < 0 || i >= size) {
        report(flag, i);
        continue;
      }
      T& dst = out[oo + i * out_step];
      const T v = src[so + j * src_step];
      if constexpr (std::is_same_v<T, bool>)
        dst = v;  // the raw op never accumulates bool
      else if (accumulate)
        dst = dst + v;
      else
        dst = v;
    }
  }
}

// Rows of one index (see the top): sorted[o, p] / perm[o, p] the row's indices in stable order and
// their positions j; threads over (o, p, e), e the column inside the row (inner, fastest).
template <class T>
__global__ void scatter_sorted_kernel(T* out, Geom og, int64_t size, int64_t out_step, const int64_t* sorted,
                                      const int64_t* perm, const T* src, Geom sg, int64_t src_step, int64_t rows,
                                      int64_t len, int64_t inner, bool accumulate, unsigned long long* flag) {
  const int64_t total = rows * len * inner;
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < total; t += int64_t(gridDim.x) * blockDim.x) {
    const int64_t e = t % inner, p = (t / inner) % len, o = t / (inner * len);
    const int64_t* row = sorted + o * len;
    const int64_t i = row[p];
    if (p > 0 && row[p - 1] == i) continue;  // not the first of its segment
    if (i < 0 || i >= size) {
      report(flag, i);
      continue;
    }
    const int64_t c = o * inner + e;
    T& dst = out[offset_of(og, c) + i * out_step];
    const int64_t so = offset_of(sg, c);
    T acc = dst;
    for (int64_t q = p; q < len && row[q] == i; ++q) {
      const T v = src[so + perm[o * len + q] * src_step];
      acc = accumulate ? acc + v : v;
    }
    dst = acc;
  }
}

Shape zero_at(const Shape& strides, int64_t dim) {
  Shape s = strides;
  s[dim] = 0;
  return s;
}

// The CPU kernel's message (core/cpu/indexing.cpp), word for word.
std::string out_of_range_message(const char* op, const char* arg, int64_t value, int64_t size, int64_t dim) {
  return str(op, ": argument '", arg, "' holds the index ", value, ", expected a value in [0, ", size, ") (dim ", dim,
             " has size ", size, ")");
}

// After the launch: defers the verdict (cuda/context.h). When a thread reported, the index is
// copied to the host (an error path only) and the CPU kernel's error thrown for its first
// index (row-major) outside [0, size); the index tensor is kept alive until then.
void check_indices(DeviceCheck& chk, const Tensor& index, int64_t size, int64_t dim, const char* op,
                   const char* arg) {
  chk.defer([index, size, dim, op, arg](int64_t reported) {
    const Tensor host = ops::to_device(index, kCPU);  // contiguous: row-major order
    const int64_t* v = host.data_ptr<int64_t>();
    for (int64_t k = 0, n = host.numel(); k < n; ++k)
      if (v[k] < 0 || v[k] >= size) fail(out_of_range_message(op, arg, v[k], size, dim));
    fail(out_of_range_message(op, arg, reported, size, dim));  // the index changed since: say what was seen
  });
}

}  // namespace

void gather(const Tensor& x, int64_t dim, const Tensor& index, Tensor& out, const char* op, const char* arg) {
  const int64_t n = out.numel();
  if (n == 0) return;
  const int64_t size = x.shape()[dim], step = x.strides()[dim];
  const Geom xg = make_geom(index.shape(), zero_at(x.strides(), dim));
  const Geom ig = make_geom(index.shape(), index.strides());
  cudaStream_t s = stream_for(out);
  DeviceCheck chk(out);
  visit_all(x.dtype(), [&]<class T>() {
    gather_kernel<T><<<grid_for(n, kThreads), kThreads, 0, s>>>(
        static_cast<const T*>(x.raw_data()), xg, size, step, static_cast<const int64_t*>(index.raw_data()), ig,
        static_cast<T*>(out.raw_data()), n, chk.flag());
  });
  COLT5_CHECK_LAUNCH("gather_kernel", s);
  check_indices(chk, index, size, dim, op, arg);
}

void scatter(Tensor& out, int64_t dim, const Tensor& index, const Tensor& src, bool accumulate, const char* op,
             const char* arg) {
  if (index.numel() == 0) return;
  const int64_t len = index.shape()[dim];
  Shape col_shape = index.shape();  // index's shape with dim collapsed: one entry per column
  col_shape[dim] = 1;
  const int64_t cols = index.numel() / len;
  const Geom og = make_geom(col_shape, out.strides());
  const Geom ig = make_geom(col_shape, index.strides());
  const Geom sg = make_geom(col_shape, src.strides());
  const int64_t size = out.shape()[dim];
  cudaStream_t s = stream_for(out);
  // Rows of one index? (index's strides after dim all 0, or sizes 1)
  bool rows_of_one = is_floating(out.dtype()) && len > 8;
  int64_t rows = 1, inner = 1;
  for (int64_t d = 0; d < index.dim(); ++d) {
    if (d < dim) rows *= index.shape()[d];
    if (d > dim) {
      inner *= index.shape()[d];
      rows_of_one = rows_of_one && (index.strides()[d] == 0 || index.shape()[d] == 1);
    }
  }
  if (rows_of_one) {
    // The rows' lists [rows, len], contiguous, then sorted stably along len.
    Shape lead(index.shape().begin(), index.shape().begin() + dim + 1);
    Shape lead_strides(index.strides().begin(), index.strides().begin() + dim + 1);
    const Tensor lists = ops::contiguous(Tensor::make_view(index, lead, lead_strides, index.offset()));
    const ops::SortResult sorted = ops::sort(Tensor::make_view(lists, {rows, len}, {len, 1}, lists.offset()), 1, false);
    DeviceCheck chk(out);
    visit_floating(out.dtype(), op, [&]<class T>() {
      scatter_sorted_kernel<T><<<grid_for(rows * len * inner, kThreads), kThreads, 0, s>>>(
          static_cast<T*>(out.raw_data()), og, size, out.strides()[dim],
          static_cast<const int64_t*>(sorted.values.raw_data()), static_cast<const int64_t*>(sorted.indices.raw_data()),
          static_cast<const T*>(src.raw_data()), sg, src.strides()[dim], rows, len, inner, accumulate, chk.flag());
    });
    COLT5_CHECK_LAUNCH("scatter_sorted_kernel", s);
    check_indices(chk, index, size, dim, op, arg);
    return;
  }
  DeviceCheck chk(out);
  visit_all(out.dtype(), [&]<class T>() {
    scatter_kernel<T><<<grid_for(cols, kThreads), kThreads, 0, s>>>(
        static_cast<T*>(out.raw_data()), og, size, out.strides()[dim], static_cast<const int64_t*>(index.raw_data()),
        ig, index.strides()[dim], static_cast<const T*>(src.raw_data()), sg, src.strides()[dim], cols, len,
        accumulate, chk.flag());
  });
  COLT5_CHECK_LAUNCH("scatter_kernel", s);
  check_indices(chk, index, size, dim, op, arg);
}

}  // namespace colt5::cuda

COLT5_REGISTER_CUDA(gather, colt5::cuda::gather)
COLT5_REGISTER_CUDA(scatter, colt5::cuda::scatter)
