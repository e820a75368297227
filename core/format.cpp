// Tensor printing (the rules are in core/format.h).
//
// Two passes over the elements that will be shown: the first turns each into text (so that
// every element can be right-aligned to the widest), the second lays the text out with
// brackets, separators and "..." markers. For an n-dim tensor, entries of the last dim are
// separated by ", "; entries of dim d < n-1 by "," plus (n-1-d) newlines and an indent that
// lines the next "[" up under the previous one.
//
// The library target is compiled without fmt's flags; fmt is used header-only here, as it is
// by every program that links colt5.
#ifndef FMT_HEADER_ONLY
#define FMT_HEADER_ONLY
#endif
#include "core/format.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <type_traits>
#include <vector>

#include <fmt/format.h>

#include "core/ops/copy.h"

namespace colt5 {

namespace {

constexpr int64_t kGap = -1;  // "..." in a list of displayed indices

// The indices of one dim that are shown: all, or the first and last `edge` around a gap.
std::vector<int64_t> shown_indices(int64_t size, bool summarise, int64_t edge) {
  std::vector<int64_t> idx;
  if (summarise && size > 2 * edge) {
    for (int64_t i = 0; i < edge; ++i) idx.push_back(i);
    idx.push_back(kGap);
    for (int64_t i = size - edge; i < size; ++i) idx.push_back(i);
  } else {
    for (int64_t i = 0; i < size; ++i) idx.push_back(i);
  }
  return idx;
}

// Row-major offsets (into a contiguous buffer) of the shown elements, in printing order.
void collect_offsets(const Shape& shape, const std::vector<std::vector<int64_t>>& shown, size_t d, int64_t base,
                     std::vector<int64_t>& out) {
  if (d == shape.size()) {
    out.push_back(base);
    return;
  }
  int64_t inner = 1;
  for (size_t k = d + 1; k < shape.size(); ++k) inner *= shape[k];
  for (int64_t i : shown[d])
    if (i != kGap) collect_offsets(shape, shown, d + 1, base + i * inner, out);
}

template <class T>
std::vector<std::string> element_texts(const T* data, const std::vector<int64_t>& offsets, int precision) {
  std::vector<std::string> texts;
  texts.reserve(offsets.size());
  if constexpr (std::is_same_v<T, bool>) {
    for (int64_t o : offsets) texts.push_back(data[o] ? "True" : "False");
  } else if constexpr (std::is_integral_v<T>) {
    for (int64_t o : offsets) texts.push_back(fmt::format("{}", data[o]));
  } else {
    // Scientific notation when fixed-point would hide digits (tiny values) or be too wide.
    bool scientific = false;
    for (int64_t o : offsets) {
      const double a = std::fabs(double(data[o]));
      if (std::isfinite(a) && a != 0.0 && (a >= 1e8 || a < 1e-4)) scientific = true;
    }
    for (int64_t o : offsets) {
      const double v = double(data[o]);
      if (std::isnan(v)) texts.push_back("nan");
      else if (std::isinf(v)) texts.push_back(v > 0 ? "inf" : "-inf");
      else if (scientific) texts.push_back(fmt::format("{:.{}e}", v, precision));
      else texts.push_back(fmt::format("{:.{}f}", v, precision));
    }
  }
  return texts;
}

struct Layout {
  const Shape& shape;
  const std::vector<std::vector<int64_t>>& shown;
  const std::vector<std::string>& texts;
  size_t width;   // every element right-aligned to this
  size_t indent;  // column of the outermost "["
  size_t next = 0;  // the next element of `texts` to print
  std::string out;

  void emit(size_t d) {
    if (d == shape.size()) {
      const std::string& s = texts[next++];
      out.append(width - s.size(), ' ');
      out += s;
      return;
    }
    out += '[';
    const std::vector<int64_t>& idx = shown[d];
    for (size_t j = 0; j < idx.size(); ++j) {
      if (j > 0) {
        out += ',';
        if (d + 1 == shape.size()) {
          out += ' ';
        } else {
          out.append(shape.size() - 1 - d, '\n');
          out.append(indent + d + 1, ' ');
        }
      }
      if (idx[j] == kGap) out += "...";
      else emit(d + 1);
    }
    out += ']';
  }
};

}  // namespace

std::string format_tensor(const Tensor& t, const PrintOptions& options) {
  if (!t.defined()) return "tensor(undefined)";
  const Shape& shape = t.shape();
  std::string suffix = str(", shape=", shape, ", dtype=", dtype_name(t.dtype()), ", device=", t.device());
  if (t.requires_grad()) suffix += ", requires_grad=True";
  const std::string prefix = "tensor(";

  if (t.numel() == 0) return prefix + "[]" + suffix + ")";

  // Host copy with row-major layout; works for views and for CUDA tensors alike.
  // (16-bit floats are shown through float32, which holds each of their values exactly.)
  Tensor host = ops::contiguous(ops::to_device(t, kCPU));
  if (is_half(host.dtype())) host = ops::to_dtype(host, DType::Float32);
  const bool summarise = t.numel() > options.threshold;
  std::vector<std::vector<int64_t>> shown;
  for (int64_t size : shape) shown.push_back(shown_indices(size, summarise, options.edgeitems));
  std::vector<int64_t> offsets;
  collect_offsets(shape, shown, 0, 0, offsets);

  std::vector<std::string> texts;
  visit_all(host.dtype(), [&]<class T>() {
    texts = element_texts(static_cast<const T*>(host.raw_data()), offsets, options.precision);
  });
  size_t width = 0;
  for (const std::string& s : texts) width = std::max(width, s.size());

  Layout layout{shape, shown, texts, width, prefix.size(), 0, {}};
  layout.emit(0);
  return prefix + layout.out + suffix + ")";
}

std::string Tensor::to_string() const { return format_tensor(*this); }

}  // namespace colt5
