// Cases for local_attention: non-causal look +-1, exact_windowsize on and off, causal with
// look_backward 1 and 2, look_forward 0 and 2, autopad (n not a multiple of w) with and without
// a mask, a key mask with fully-masked windows (uniform over the slots, fillers included),
// shared_qk, head dim 32 (the CUDA fast path) and an odd head dim (the CUDA float32 fallback), and a mask
// shared by heads (b < B). Inputs: q, k, v [b, h, n, d] (or [B, n, d]), then the mask (a constant).
#include "tests/cases/cases.h"

namespace colt5::cases {

namespace {

enum class Mask { None, Pattern, WindowsOff };

struct Cfg {
  int64_t b = 1, h = 2, n = 8, d = 4;
  bool merged = false;  // q [B, n, d] with B = b h (else [b, h, n, d])
  LocalAttentionOptions o;
  Mask mask = Mask::None;
};

std::string describe(const Cfg& c) {
  std::string s = c.merged ? str("[", c.b * c.h, ",", c.n, ",", c.d, "]") : str("[", c.b, ",", c.h, ",", c.n, ",", c.d, "]");
  s += str(" w", c.o.window_size, " lb", c.o.look_backward, " lf", c.o.resolved_look_forward());
  if (c.o.causal) s += " causal";
  if (c.o.exact_windowsize) s += " exact";
  if (c.o.autopad) s += " autopad";
  if (c.o.shared_qk) s += " shared_qk";
  if (c.o.scale) s += str(" scale ", *c.o.scale);
  if (c.mask == Mask::Pattern) s += " mask";
  if (c.mask == Mask::WindowsOff) s += " mask (2 windows off)";
  return s;
}

// mask [b, n]: key t of batch bi is off when (5 t + 3 bi) % 4 == 0; WindowsOff also turns off
// every key of batch 0's first two windows (so the first window's queries see no key at all
// when they look at most one window forward).
Tensor make_mask(const Cfg& c, Device dev) {
  std::vector<bool> v(size_t(c.b * c.n));
  for (int64_t bi = 0; bi < c.b; ++bi)
    for (int64_t t = 0; t < c.n; ++t) {
      bool on = (5 * t + 3 * bi) % 4 != 0;
      if (c.mask == Mask::WindowsOff && bi == 0 && t < 2 * c.o.window_size) on = false;
      v[size_t(bi * c.n + t)] = on;
    }
  return from_vector(v, {c.b, c.n}, dev);
}

OpCase local_case(const Cfg& cfg) {
  OpCase c;
  c.op = "local_attention";
  c.variant = describe(cfg);
  c.inputs = [cfg](DType dt, Device dev, uint64_t seed) -> TensorList {
    const Shape s = cfg.merged ? Shape{cfg.b * cfg.h, cfg.n, cfg.d} : Shape{cfg.b, cfg.h, cfg.n, cfg.d};
    TensorList ts = {leaf(s, dt, dev, seed), leaf(s, dt, dev, seed + 1), leaf(s, dt, dev, seed + 2)};
    ts.push_back(cfg.mask == Mask::None ? Tensor() : make_mask(cfg, dev));
    return ts;
  };
  const LocalAttentionOptions o = cfg.o;
  c.fn = [o](const TensorList& in) { return local_attention(in[0], in[1], in[2], in[3], o); };
  c.rtol_f32 = 1e-5;
  return c;
}

LocalAttentionOptions opts(int64_t w, int64_t lb, std::optional<int64_t> lf, bool causal, bool exact,
                           bool autopad = false) {
  LocalAttentionOptions o;
  o.window_size = w;
  o.look_backward = lb;
  o.look_forward = lf;
  o.causal = causal;
  o.exact_windowsize = exact;
  o.autopad = autopad;
  return o;
}

}  // namespace

std::vector<OpCase> local_attention_cases() {
  std::vector<OpCase> cs;
  auto add = [&](Cfg c) { cs.push_back(local_case(c)); };
  Cfg c;
  // non-causal look +-1, exact window off / on
  c.o = opts(2, 1, 1, false, false);
  add(c);
  c.o = opts(2, 1, 1, false, true);
  add(c);
  // causal, look_backward 1 and 2 (exact on for lb 2)
  c.o = opts(2, 1, std::nullopt, true, false);
  add(c);
  c.o = opts(2, 2, std::nullopt, true, true);
  add(c);
  // look_forward 0 and 2 (non-causal)
  c.o = opts(2, 1, 0, false, true);
  add(c);
  c.o = opts(2, 0, 2, false, false);
  add(c);
  // autopad: n = 7 with w = 3, without and with a mask (mask shared by the heads: b 2, B 4)
  c = Cfg{};
  c.b = 2;
  c.n = 7;
  c.d = 3;
  c.o = opts(3, 1, 1, false, true, true);
  add(c);
  c.mask = Mask::Pattern;
  add(c);
  c.o = opts(3, 1, std::nullopt, true, false, true);
  c.mask = Mask::None;
  add(c);
  // a key mask with the first two windows of batch 0 off (fully-masked queries), merged [B, n, d]
  c = Cfg{};
  c.b = 2;
  c.n = 8;
  c.d = 3;
  c.merged = true;
  c.mask = Mask::WindowsOff;
  c.o = opts(2, 1, 1, false, false);
  add(c);
  c.o = opts(2, 1, std::nullopt, true, false);
  add(c);
  // shared_qk (k l2-normalised, a token's own key scores -5e4), non-causal and causal
  c = Cfg{};
  c.o = opts(2, 1, 1, false, false);
  c.o.shared_qk = true;
  add(c);
  c.o = opts(2, 1, std::nullopt, true, false);
  c.o.shared_qk = true;
  c.mask = Mask::Pattern;
  add(c);
  // head dim 32 (the CUDA fast path) with an explicit scale, and the same with autopad + mask
  c = Cfg{};
  c.h = 1;
  c.d = 32;
  c.o = opts(4, 1, 1, false, true);
  c.o.scale = 0.3;
  add(c);
  c.b = 2;
  c.n = 10;
  c.o = opts(4, 1, std::nullopt, true, false, true);
  c.mask = Mask::Pattern;
  add(c);
  // an odd head dim (float32 on CUDA falls back to the composed version; float64 runs fused)
  c = Cfg{};
  c.d = 5;
  c.n = 9;
  c.o = opts(3, 1, 1, false, false);
  add(c);
  return cs;
}

}  // namespace colt5::cases
