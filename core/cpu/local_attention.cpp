// CPU reference kernels of local_attention (contract in core/ops/attention.h, the composed
// version it must match in autograd/ops/local_attention.cpp).
//
// Dims legend: B merged batch, n queries / keys, d head dim, w window, W = ceil(n / w) windows,
// n_pad = W w, lb / lf look back / forward, J = (lb + 1 + lf) w slots per window.
//
// Nothing of size [B, W, w, J] is built: for query t (window qw = t / w) the slots are the
// keys of windows qw - lb .. qw + lf. Windows outside [0, W) are filler slots (key / value -1,
// always masked); their positions in [0, n_pad) are the range [k0, k1). A slot at key position
// u in that range is masked when
//   causal:      t < u, or with exact_windowsize t > u + w lb
//   non-causal:  with exact_windowsize u - w lf > t or t > u + w lb
//   mask given:  u >= n (autopad) or mask[row, u] is False
// u in [n, n_pad) with no mask is a zero key / value (score 0), attendable. shared_qk: the
// unmasked slot u == t scores the constant -5e4 (no gradient flows through it). Masked slots
// score -finfo.max, which contributes exactly 0 to a row that has any unmasked slot; a row whose
// slots are all masked is uniform over the J slots: out = (sum of the in-range values - (J -
// (k1 - k0))) / J (fillers -1, padding 0), lse = -finfo.max, and its scores get no gradient.
//
// Forward per query: s_u = scale q_t . k_u over the unmasked slots, lse = m + log sum exp(s - m),
// out = sum_u exp(s_u - lse) v_u.  Backward per query (D = g_t . out_t, p_u = exp(s_u - lse)):
//   dv_u += p_u g_t,  ds_u = p_u (g_t . v_u - D) (0 on the shared_qk self slot),
//   dq_t = scale sum_u ds_u k_u,  dk_u += scale ds_u q_t.
//
// Loop order: one (row, query window) at a time, the window's key / value range converted to
// double once into two scratch layouts, rows [u][d] (for the axpys over d) and transposed
// [d][u] (the scores and g . v as axpys over u); the innermost loops are contiguous and
// vectorise. Accumulation is in double. Rows are split across threads (each thread owns whole
// rows, dk / dv included), so results do not depend on the thread count.
#include <algorithm>
#include <cmath>
#include <limits>
#include <thread>
#include <vector>

#include "core/cpu/parallel.h"
#include "core/ops/attention.h"

namespace colt5::cpu {

namespace {

constexpr double kSelfScore = -5e4;  // shared_qk: a token's score with its own key

struct Geometry {
  int64_t B, n, d, w, W, lb, lf, J, Hm;  // Hm: merged rows per mask row (B / b)
  bool causal, exact, shared_qk, has_mask;
  double scale;
};

Geometry geometry_of(const LocalAttentionInputs& in) {
  Geometry g;
  g.B = in.q.size(0);
  g.n = in.q.size(1);
  g.d = in.q.size(2);
  g.w = in.opts.window_size;
  g.W = (g.n + g.w - 1) / g.w;
  g.lb = in.opts.look_backward;
  g.lf = in.opts.resolved_look_forward();
  g.J = (g.lb + 1 + g.lf) * g.w;
  g.has_mask = in.mask.defined();
  g.Hm = g.has_mask ? g.B / in.mask.size(0) : 1;
  g.causal = in.opts.causal;
  g.exact = in.opts.exact_windowsize;
  g.shared_qk = in.opts.shared_qk;
  g.scale = in.scale;
  return g;
}

// Whether query t may not attend to key position u (u in [0, n_pad)); mrow: the row's mask or null.
inline bool masked(const Geometry& g, const bool* mrow, int64_t t, int64_t u) {
  if (g.causal) {
    if (t < u) return true;
    if (g.exact && t > u + g.w * g.lb) return true;
  } else if (g.exact) {
    if (u - g.w * g.lf > t || t > u + g.w * g.lb) return true;
  }
  if (mrow != nullptr && (u >= g.n || !mrow[u])) return true;
  return false;
}

// The key / value range of window qw, as double scratch: rows [u][d] and transposed [d][u]
// (rows past n are zero: autopad).
template <class T>
struct WindowScratch {
  std::vector<double> rows, cols;  // [Jr][d], [d][Jr]
  void load(const T* src, const Geometry& g, int64_t k0, int64_t k1, bool want_rows, bool want_cols) {
    const int64_t Jr = k1 - k0, d = g.d;
    if (want_rows) rows.assign(size_t(Jr * d), 0.0);
    if (want_cols) cols.assign(size_t(Jr * d), 0.0);
    for (int64_t u = k0; u < std::min(k1, g.n); ++u) {
      const T* s = src + u * d;
      const int64_t j = u - k0;
      if (want_rows)
        for (int64_t c = 0; c < d; ++c) rows[size_t(j * d + c)] = double(s[c]);
      if (want_cols)
        for (int64_t c = 0; c < d; ++c) cols[size_t(c * Jr + j)] = double(s[c]);
    }
  }
};

// s[j] = sum_c x[c] cols[c Jr + j] for j in [j0, j1), 0 elsewhere in [0, Jr) (four columns c
// per pass: fewer loads / stores of s).
inline void dot_cols(const double* x, const double* cols, int64_t d, int64_t Jr, int64_t j0, int64_t j1, double* s) {
  std::fill(s, s + Jr, 0.0);
  int64_t c = 0;
  for (; c + 4 <= d; c += 4) {
    const double x0 = x[c], x1 = x[c + 1], x2 = x[c + 2], x3 = x[c + 3];
    const double *k0 = cols + c * Jr, *k1 = k0 + Jr, *k2 = k1 + Jr, *k3 = k2 + Jr;
    for (int64_t j = j0; j < j1; ++j) s[j] += (x0 * k0[j] + x1 * k1[j]) + (x2 * k2[j] + x3 * k3[j]);
  }
  for (; c < d; ++c) {
    const double xc = x[c];
    const double* kc = cols + c * Jr;
    for (int64_t j = j0; j < j1; ++j) s[j] += xc * kc[j];
  }
}

// The slots [j0, j1) of query t (window range [k0, k0 + Jr)) outside which every slot is masked.
inline void slot_range(const Geometry& g, int64_t t, int64_t k0, int64_t Jr, int64_t& j0, int64_t& j1) {
  int64_t lo = k0, hi = k0 + Jr;
  if (g.causal) hi = std::min(hi, t + 1);
  if (g.exact) lo = std::max(lo, t - g.w * g.lb);
  if (g.exact && !g.causal) hi = std::min(hi, t + g.w * g.lf + 1);
  if (g.has_mask) hi = std::min(hi, g.n);
  j0 = lo - k0;
  j1 = std::max(j0, hi - k0);
}

// acc[c] += sum_j coef[j] rows[j d + c] for c < d (four rows j per pass).
inline void axpy_rows(const double* coef, const double* rows, int64_t Jr, int64_t d, double* acc) {
  int64_t j = 0;
  for (; j + 4 <= Jr; j += 4) {
    const double e0 = coef[j], e1 = coef[j + 1], e2 = coef[j + 2], e3 = coef[j + 3];
    if (e0 == 0 && e1 == 0 && e2 == 0 && e3 == 0) continue;
    const double *r0 = rows + j * d, *r1 = r0 + d, *r2 = r1 + d, *r3 = r2 + d;
    for (int64_t c = 0; c < d; ++c) acc[c] += (e0 * r0[c] + e1 * r1[c]) + (e2 * r2[c] + e3 * r3[c]);
  }
  for (; j < Jr; ++j) {
    const double e = coef[j];
    if (e == 0) continue;
    const double* r = rows + j * d;
    for (int64_t c = 0; c < d; ++c) acc[c] += e * r[c];
  }
}

template <class T>
void forward_impl(const LocalAttentionInputs& in, Tensor& out_t, Tensor& lse_t) {
  const Geometry g = geometry_of(in);
  const T* q = in.q.data_ptr<T>();
  const T* k = in.k.data_ptr<T>();
  const T* v = in.v.data_ptr<T>();
  const bool* mask = g.has_mask ? in.mask.data_ptr<bool>() : nullptr;
  T* out = out_t.data_ptr<T>();
  T* lse = lse_t.data_ptr<T>();
  const double neg = max_neg_value(in.q.dtype());
  const int64_t d = g.d, n = g.n;

  parallel_rows(g.B, double(n * g.J * (d + 1)), [&](int64_t b) {
    const T* qb = q + b * n * d;
    const T* kb = k + b * n * d;
    const T* vb = v + b * n * d;
    const bool* mrow = mask ? mask + (b / g.Hm) * n : nullptr;
    WindowScratch<T> ks, vs;
    std::vector<double> s, e, qd(static_cast<size_t>(d)), acc(static_cast<size_t>(d));
    std::vector<char> ok;
    for (int64_t qw = 0; qw < g.W; ++qw) {
      const int64_t k0 = std::max<int64_t>(0, qw - g.lb) * g.w, k1 = std::min(g.W, qw + g.lf + 1) * g.w;
      const int64_t Jr = k1 - k0;
      ks.load(kb, g, k0, k1, false, true);
      vs.load(vb, g, k0, k1, true, false);
      s.assign(size_t(Jr), 0.0);
      e.assign(size_t(Jr), 0.0);
      ok.assign(size_t(Jr), 0);
      for (int64_t t = qw * g.w; t < std::min(n, (qw + 1) * g.w); ++t) {
        for (int64_t c = 0; c < d; ++c) qd[size_t(c)] = g.scale * double(qb[t * d + c]);
        int64_t j0, j1;
        slot_range(g, t, k0, Jr, j0, j1);
        dot_cols(qd.data(), ks.cols.data(), d, Jr, j0, j1, s.data());
        double m = -std::numeric_limits<double>::infinity();
        int64_t valid = 0;
        for (int64_t j = 0; j < Jr; ++j) {
          const int64_t u = k0 + j;
          const bool on = !masked(g, mrow, t, u);
          ok[size_t(j)] = on;
          if (!on) continue;
          if (g.shared_qk && u == t) s[size_t(j)] = kSelfScore;
          m = std::max(m, s[size_t(j)]);
          ++valid;
        }
        std::fill(acc.begin(), acc.end(), 0.0);
        if (valid == 0) {  // uniform over the J slots: in-range values, zero padding, -1 fillers
          std::fill(e.begin(), e.end(), 1.0);
          axpy_rows(e.data(), vs.rows.data(), Jr, d, acc.data());
          const double fillers = double(g.J - Jr);
          for (int64_t c = 0; c < d; ++c) out[(b * n + t) * d + c] = T((acc[size_t(c)] - fillers) / double(g.J));
          lse[b * n + t] = T(neg);
          continue;
        }
        double sum = 0;
        for (int64_t j = 0; j < Jr; ++j) {
          e[size_t(j)] = ok[size_t(j)] ? std::exp(s[size_t(j)] - m) : 0.0;
          sum += e[size_t(j)];
        }
        axpy_rows(e.data(), vs.rows.data(), Jr, d, acc.data());
        for (int64_t c = 0; c < d; ++c) out[(b * n + t) * d + c] = T(acc[size_t(c)] / sum);
        lse[b * n + t] = T(m + std::log(sum));
      }
    }
  });
}

template <class T>
void backward_impl(const LocalAttentionInputs& in, const Tensor& out_t, const Tensor& lse_t, const Tensor& g_t,
                   LocalAttentionGrads& grads) {
  const Geometry g = geometry_of(in);
  const T* q = in.q.data_ptr<T>();
  const T* k = in.k.data_ptr<T>();
  const T* v = in.v.data_ptr<T>();
  const T* out = out_t.data_ptr<T>();
  const T* lse = lse_t.data_ptr<T>();
  const T* gr = g_t.data_ptr<T>();
  const bool* mask = g.has_mask ? in.mask.data_ptr<bool>() : nullptr;
  T* dq = grads.dq.defined() ? grads.dq.data_ptr<T>() : nullptr;
  T* dk = grads.dk.defined() ? grads.dk.data_ptr<T>() : nullptr;
  T* dv = grads.dv.defined() ? grads.dv.data_ptr<T>() : nullptr;
  const int64_t d = g.d, n = g.n;
  const bool need_ds = dq != nullptr || dk != nullptr;

  parallel_rows(g.B, double(n * g.J * (3 * d + 1)), [&](int64_t b) {
    const int64_t base = b * n * d;
    const bool* mrow = mask ? mask + (b / g.Hm) * n : nullptr;
    WindowScratch<T> ks, vs;
    // this row's dk / dv in double, over [0, n_pad) (the padded rows are dropped)
    std::vector<double> dk_acc(dk ? size_t(g.W * g.w * d) : 0, 0.0), dv_acc(dv ? size_t(g.W * g.w * d) : 0, 0.0);
    std::vector<double> s, p, pt, dst, gw, qwr, dqd(static_cast<size_t>(d));
    std::vector<char> ok;
    for (int64_t qw = 0; qw < g.W; ++qw) {
      const int64_t k0 = std::max<int64_t>(0, qw - g.lb) * g.w, k1 = std::min(g.W, qw + g.lf + 1) * g.w;
      const int64_t Jr = k1 - k0;
      ks.load(k + base, g, k0, k1, dq != nullptr, true);
      vs.load(v + base, g, k0, k1, false, need_ds);
      const int64_t ta = qw * g.w, tb = std::min(n, (qw + 1) * g.w), nq = tb - ta;
      s.assign(size_t(Jr), 0.0);
      p.assign(size_t(Jr), 0.0);
      ok.assign(size_t(Jr), 0);
      // the window's p and ds transposed ([Jr][nq]), its g and scale q rows ([nq][d]): dv and dk
      // of each key are then one pass over the window's queries
      pt.assign(size_t(Jr * nq), 0.0);
      dst.assign(size_t(Jr * nq), 0.0);
      gw.assign(size_t(nq * d), 0.0);
      qwr.assign(size_t(nq * d), 0.0);
      for (int64_t t = ta; t < tb; ++t) {
        const int64_t i = t - ta;
        double* qd = qwr.data() + i * d;
        double* gd = gw.data() + i * d;
        for (int64_t c = 0; c < d; ++c) {
          qd[c] = g.scale * double(q[base + t * d + c]);
          gd[c] = double(gr[base + t * d + c]);
        }
        int64_t valid = 0;
        for (int64_t j = 0; j < Jr; ++j) {
          ok[size_t(j)] = !masked(g, mrow, t, k0 + j);
          valid += ok[size_t(j)];
        }
        if (valid == 0) {  // uniform p = 1 / J, no score gradient
          if (dq)
            for (int64_t c = 0; c < d; ++c) dq[base + t * d + c] = T(0);
          for (int64_t j = 0; j < Jr; ++j) pt[size_t(j * nq + i)] = 1.0 / double(g.J);
          continue;
        }
        int64_t j0, j1;
        slot_range(g, t, k0, Jr, j0, j1);
        dot_cols(qd, ks.cols.data(), d, Jr, j0, j1, s.data());
        const double l = double(lse[b * n + t]);
        for (int64_t j = 0; j < Jr; ++j) {
          if (!ok[size_t(j)]) {
            p[size_t(j)] = 0;
            continue;
          }
          if (g.shared_qk && k0 + j == t) s[size_t(j)] = kSelfScore;
          p[size_t(j)] = std::exp(s[size_t(j)] - l);
          pt[size_t(j * nq + i)] = p[size_t(j)];
        }
        if (!need_ds) continue;
        double D = 0;
        for (int64_t c = 0; c < d; ++c) D += gd[c] * double(out[base + t * d + c]);
        // s <- dp = g . v_u, then p <- ds
        dot_cols(gd, vs.cols.data(), d, Jr, j0, j1, s.data());
        for (int64_t j = 0; j < Jr; ++j) {
          const bool on = ok[size_t(j)] && !(g.shared_qk && k0 + j == t);
          p[size_t(j)] = on ? p[size_t(j)] * (s[size_t(j)] - D) : 0.0;
          dst[size_t(j * nq + i)] = p[size_t(j)];
        }
        if (dq) {
          std::fill(dqd.begin(), dqd.end(), 0.0);
          axpy_rows(p.data(), ks.rows.data(), Jr, d, dqd.data());
          for (int64_t c = 0; c < d; ++c) dq[base + t * d + c] = T(g.scale * dqd[size_t(c)]);
        }
      }
      for (int64_t j = 0; j < Jr; ++j) {
        if (dv) axpy_rows(pt.data() + j * nq, gw.data(), nq, d, dv_acc.data() + (k0 + j) * d);
        if (dk) axpy_rows(dst.data() + j * nq, qwr.data(), nq, d, dk_acc.data() + (k0 + j) * d);
      }
    }
    if (dk)
      for (int64_t i = 0; i < n * d; ++i) dk[base + i] = T(dk_acc[size_t(i)]);
    if (dv)
      for (int64_t i = 0; i < n * d; ++i) dv[base + i] = T(dv_acc[size_t(i)]);
  });
}

}  // namespace

void local_attention_forward(const LocalAttentionInputs& in, Tensor& out, Tensor& lse) {
  visit_floating(in.q.dtype(), "local_attention", [&]<class T>() { forward_impl<T>(in, out, lse); });
}

void local_attention_backward(const LocalAttentionInputs& in, const Tensor& out, const Tensor& lse, const Tensor& g,
                              LocalAttentionGrads& grads) {
  visit_floating(in.q.dtype(), "local_attention_backward",
                 [&]<class T>() { backward_impl<T>(in, out, lse, g, grads); });
}

bool local_attention_supports(const LocalAttentionInputs&) { return true; }

}  // namespace colt5::cpu
