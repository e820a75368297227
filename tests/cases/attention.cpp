// Cases for the fused heavy attention op: null key / value on and off, 1 and 2 routes (h = 4),
// key masks with some keys off and a (batch, route) whose keys are all off (with a null key:
// attends to it only; without: a uniform softmax), score_kv on values only and on keys too,
// score_q, query / key counts that are not a multiple of any kernel tile (n = 67, m = 70),
// m = 0 with a null key, head dims 32, 64 and 128 (the CUDA float32 fast path) and odd ones
// (5, 6, 48: the composed fallback in float32 on CUDA, the simple kernel in float64).
// Scores are drawn around 1 (scale 0.5, shift 1), as the routers' normalised scores are.
#include "tests/cases/cases.h"

#include <cmath>

namespace colt5::cases {

namespace {

enum class Mask { None, Some, OneRowOff };  // OneRowOff: (batch 0, route 0) has every key off

struct Cfg {
  int64_t b, h, n, m, d, r = 1;
  bool null = true;
  Mask mask = Mask::None;
  bool skv = false, mkbs = false, sq = false;
};

std::string describe(const Cfg& c) {
  std::string s = str("b", c.b, " h", c.h, " n", c.n, " m", c.m, " d", c.d, " r", c.r, c.null ? " null-kv" : "");
  if (c.mask == Mask::Some) s += " mask";
  if (c.mask == Mask::OneRowOff) s += " mask(row all off)";
  if (c.skv) s += c.mkbs ? " score_kv(k,v)" : " score_kv(v)";
  if (c.sq) s += " score_q";
  return s;
}

// mask [b, r, m]: key t of (bi, route) is off when (7 t + 3 bi + route) % 3 == 0; with OneRowOff
// every key of (0, 0) is off.
Tensor make_mask(const Cfg& c, Device dev) {
  std::vector<bool> v(size_t(c.b * c.r * c.m));
  for (int64_t bi = 0; bi < c.b; ++bi)
    for (int64_t ro = 0; ro < c.r; ++ro)
      for (int64_t t = 0; t < c.m; ++t) {
        bool on = (7 * t + 3 * bi + ro) % 3 != 0;
        if (c.mask == Mask::OneRowOff && bi == 0 && ro == 0) on = false;
        v[size_t((bi * c.r + ro) * c.m + t)] = on;
      }
  return from_vector(v, {c.b, c.r, c.m}, dev);
}

OpCase attention_case(const Cfg& cfg) {
  OpCase c;
  c.op = "attention";
  c.variant = describe(cfg);
  // inputs: q, k, v, [null_k, null_v], [score_kv], [score_q], [mask]
  c.inputs = [cfg](DType dt, Device dev, uint64_t seed) -> TensorList {
    // With the null key alone (m = 0) p = 1 on it, so ds = p (g . v0 - g . out) = 0 and the
    // gradients of q and of the null key are exactly 0: a relative CUDA-vs-CPU comparison of
    // rounding noise against 0 means nothing, so those two are constants there.
    const bool qk_grad = cfg.m > 0;
    TensorList ts = {leaf({cfg.b, cfg.h, cfg.n, cfg.d}, dt, dev, seed, Layout::Contiguous, 1.0, 0.0, qk_grad),
                     leaf({cfg.b, cfg.h, cfg.m, cfg.d}, dt, dev, seed + 1),
                     leaf({cfg.b, cfg.h, cfg.m, cfg.d}, dt, dev, seed + 2)};
    if (cfg.null) {
      ts.push_back(leaf({cfg.h, cfg.d}, dt, dev, seed + 3, Layout::Contiguous, 1.0, 0.0, qk_grad));
      ts.push_back(leaf({cfg.h, cfg.d}, dt, dev, seed + 4));
    }
    if (cfg.skv) ts.push_back(leaf({cfg.b, cfg.r, cfg.m}, dt, dev, seed + 5, Layout::Contiguous, 0.5, 1.0));
    if (cfg.sq) ts.push_back(leaf({cfg.b, cfg.n}, dt, dev, seed + 6, Layout::Contiguous, 0.5, 1.0));
    if (cfg.mask != Mask::None) ts.push_back(make_mask(cfg, dev));
    return ts;
  };
  c.fn = [cfg](const TensorList& ts) {
    AttentionInputs in;
    size_t i = 0;
    in.q = ts[i++], in.k = ts[i++], in.v = ts[i++];
    if (cfg.null) in.null_k = ts[i++], in.null_v = ts[i++];
    if (cfg.skv) in.score_kv = ts[i++];
    if (cfg.sq) in.score_q = ts[i++];
    if (cfg.mask != Mask::None) in.mask = ts[i++];
    in.routes = cfg.r;
    in.multiply_keys_by_score = cfg.mkbs;
    in.scale = 1.0 / std::sqrt(double(cfg.d));
    return attention(in);
  };
  c.rtol_f32 = 5e-5;  // CUDA float32 accumulates in float, the CPU reference in double
  return c;
}

}  // namespace

std::vector<OpCase> attention_cases() {
  std::vector<OpCase> cs;
  // the plain case, and everything at once on an odd head dim (2 routes of 2 heads)
  cs.push_back(attention_case({.b = 2, .h = 2, .n = 5, .m = 7, .d = 8}));
  cs.push_back(attention_case(
      {.b = 2, .h = 4, .n = 4, .m = 6, .d = 5, .r = 2, .mask = Mask::Some, .skv = true, .mkbs = true, .sq = true}));
  // no null key: a (batch, route) with every key off is a uniform softmax over its keys
  cs.push_back(attention_case(
      {.b = 2, .h = 4, .n = 3, .m = 5, .d = 6, .r = 2, .null = false, .mask = Mask::OneRowOff, .skv = true}));
  // the CUDA fast path (d = 32): a row all off with the null key, scores on k, v and q
  cs.push_back(attention_case(
      {.b = 2, .h = 2, .n = 6, .m = 9, .d = 32, .mask = Mask::OneRowOff, .skv = true, .mkbs = true, .sq = true}));
  cs.push_back(attention_case({.b = 1, .h = 4, .n = 5, .m = 4, .d = 32, .r = 2, .null = false, .mask = Mask::OneRowOff}));
  // m = 70 and n = 67: neither a multiple of any tile (32 or 64)
  cs.push_back(attention_case({.b = 1, .h = 2, .n = 5, .m = 70, .d = 32, .r = 2, .null = false, .mask = Mask::Some}));
  cs.push_back(attention_case({.b = 1, .h = 1, .n = 67, .m = 3, .d = 64, .sq = true}));
  cs.push_back(attention_case({.b = 1, .h = 2, .n = 3, .m = 66, .d = 64, .mask = Mask::Some, .skv = true}));
  // only the null key (m = 0)
  cs.push_back(attention_case({.b = 1, .h = 2, .n = 4, .m = 0, .d = 32}));
  // d = 128 (fast path) and d = 48 (the float32 fallback on CUDA)
  cs.push_back(attention_case({.b = 1, .h = 1, .n = 3, .m = 5, .d = 128, .skv = true, .mkbs = true}));
  cs.push_back(attention_case({.b = 1, .h = 2, .n = 5, .m = 6, .d = 48, .mask = Mask::Some, .skv = true, .sq = true}));
  return cs;
}

}  // namespace colt5::cases
