// CPU reference kernels of heavy attention (contract and math in core/ops/attention.h): plain
// loops over (b, h, query), one row of scores at a time, accumulating in double for both dtypes;
// the (b, h) rows run on several cores (core/cpu/parallel.h), with the same results.
//
// Dims legend: b batch, h heads, n queries, m keys, d head dim, r routes (head hh uses route
// hh / (h / r)), J = m + 1 key slots with a null key (slot 0) or J = m without.
//
// Masking. A masked score is -max; when a row has at least one unmasked slot, exp(-max - lse)
// is exactly 0 in both dtypes, so masked slots are simply skipped (p = 0). When every slot of a
// row is masked (no null key, mask[b, route, :] all False) every score is -max and the softmax
// is uniform; -max + log m is not representable, so such a row uses the equivalent zero scores
// (p = 1/m, lse = log m). In the backward masked slots get ds = 0 (masked_fill's gradient).
//
// Forward, per row i: s_j = scale (score_q_i q_i) . k~_j, lse = log sum_j exp(s_j),
// out_i = sum_j exp(s_j - lse) v~_j. Backward, per row: p_j from lse, dp_j = g_i . v~_j,
// D_i = g_i . out_i, ds_j = p_j (dp_j - D_i) on unmasked slots; dq~_i = scale sum_j ds_j k~_j,
// dk~_j += scale ds_j q~_i, dv~_j += p_j g_i; then the chain through the scores (see the header).
#include <cmath>
#include <limits>
#include <vector>

#include "core/cpu/parallel.h"
#include "core/ops/attention.h"

namespace colt5::cpu {

namespace {

// Geometry and raw pointers of one call, with the per-slot rules.
template <class T>
struct View {
  int64_t b, h, n, m, d, r, hr, J;
  bool has_null, mkbs;
  double scale;
  const T *q, *k, *v, *nk, *nv, *skv, *sq;
  const bool* mask;

  explicit View(const AttentionInputs& in) {
    b = in.q.size(0), h = in.q.size(1), n = in.q.size(2), d = in.q.size(3), m = in.k.size(2);
    r = in.routes, hr = h / r;
    has_null = in.null_k.defined();
    J = m + (has_null ? 1 : 0);
    mkbs = in.multiply_keys_by_score;
    scale = in.scale;
    q = ptr(in.q), k = ptr(in.k), v = ptr(in.v), nk = ptr(in.null_k), nv = ptr(in.null_v);
    skv = ptr(in.score_kv), sq = ptr(in.score_q);
    mask = in.mask.defined() ? static_cast<const bool*>(in.mask.raw_data()) : nullptr;
  }
  static const T* ptr(const Tensor& t) { return t.defined() ? static_cast<const T*>(t.raw_data()) : nullptr; }

  // Index of (b, route) rows of mask / score_kv, and the real key of slot j (-1: the null key).
  int64_t route_row(int64_t bi, int64_t hh) const { return (bi * r + hh / hr) * m; }
  int64_t key_of(int64_t j) const { return has_null ? j - 1 : j; }
  // True when no slot of (bi, hh)'s rows can be attended (all keys masked, no null key).
  bool fully_masked(int64_t bi, int64_t hh) const {
    if (has_null || !mask) return false;
    const bool* mr = mask + route_row(bi, hh);
    for (int64_t t = 0; t < m; ++t)
      if (mr[t]) return false;
    return true;
  }
  bool masked(int64_t bi, int64_t hh, int64_t j) const {
    const int64_t t = key_of(j);
    return t >= 0 && mask && !mask[route_row(bi, hh) + t];
  }
  // Key / value of slot j with the score applied (k~, v~), element e.
  double key(int64_t bi, int64_t hh, int64_t j, int64_t e) const {
    const int64_t t = key_of(j);
    if (t < 0) return double(nk[hh * d + e]);
    const double x = double(k[((bi * h + hh) * m + t) * d + e]);
    return skv && mkbs ? x * double(skv[route_row(bi, hh) + t]) : x;
  }
  double value(int64_t bi, int64_t hh, int64_t j, int64_t e) const {
    const int64_t t = key_of(j);
    if (t < 0) return double(nv[hh * d + e]);
    const double x = double(v[((bi * h + hh) * m + t) * d + e]);
    return skv ? x * double(skv[route_row(bi, hh) + t]) : x;
  }
  // q~ = score_q q.
  double query(int64_t bi, int64_t hh, int64_t i, int64_t e) const {
    const double x = double(q[((bi * h + hh) * n + i) * d + e]);
    return sq ? x * double(sq[bi * n + i]) : x;
  }

  // k~, v~ of every slot of head (bi, hh) as [J, d] doubles, and q~ of its queries [n, d].
  void head(int64_t bi, int64_t hh, std::vector<double>& kt, std::vector<double>& vt, std::vector<double>& qt) const {
    for (int64_t j = 0; j < J; ++j)
      for (int64_t e = 0; e < d; ++e) kt[j * d + e] = key(bi, hh, j, e), vt[j * d + e] = value(bi, hh, j, e);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t e = 0; e < d; ++e) qt[i * d + e] = query(bi, hh, i, e);
  }

  // Scores of row i (q~_i = qi [d]) into s[J] (NaN-free): scale q~ . k~, -inf on masked slots, 0
  // everywhere on a fully masked row. Returns lse = log sum exp(s).
  double scores(int64_t bi, int64_t hh, const double* qi, const std::vector<double>& kt, bool full,
                std::vector<double>& s) const {
    double mx = -std::numeric_limits<double>::infinity();
    for (int64_t j = 0; j < J; ++j) {
      if (full) {
        s[j] = 0.0;
      } else if (masked(bi, hh, j)) {
        s[j] = -std::numeric_limits<double>::infinity();
      } else {
        double dot = 0;
        for (int64_t e = 0; e < d; ++e) dot += qi[e] * kt[j * d + e];
        s[j] = scale * dot;
      }
      if (s[j] > mx) mx = s[j];
    }
    double sum = 0;
    for (int64_t j = 0; j < J; ++j) sum += std::exp(s[j] - mx);  // mx is finite: some slot is unmasked
    return mx + std::log(sum);
  }
};

}  // namespace

bool attention_supports(const AttentionInputs&) { return true; }

void attention_forward(const AttentionInputs& in, Tensor& out, Tensor& lse) {
  visit_floating(in.q.dtype(), "attention", [&]<class T>() {
    const View<T> a(in);
    T* os = static_cast<T*>(out.raw_data());
    T* ls = static_cast<T*>(lse.raw_data());
    // One (batch, head) row per task: its outputs are its own.
    parallel_rows(a.b * a.h, double(a.n * a.J * a.d), [&](int64_t bh) {
      const int64_t bi = bh / a.h, hh = bh % a.h;
      std::vector<double> s(a.J), acc(a.d), kt(a.J * a.d), vt(a.J * a.d), qt(a.n * a.d);
      const bool full = a.fully_masked(bi, hh);
      a.head(bi, hh, kt, vt, qt);
      for (int64_t i = 0; i < a.n; ++i) {
        const double L = a.scores(bi, hh, &qt[i * a.d], kt, full, s);
        std::fill(acc.begin(), acc.end(), 0.0);
        for (int64_t j = 0; j < a.J; ++j) {
          const double p = std::exp(s[j] - L);
          if (p == 0.0) continue;
          for (int64_t e = 0; e < a.d; ++e) acc[e] += p * vt[j * a.d + e];
        }
        const int64_t row = (bi * a.h + hh) * a.n + i;
        for (int64_t e = 0; e < a.d; ++e) os[row * a.d + e] = T(acc[e]);
        ls[row] = T(L);
      }
    });
  });
}

void attention_backward(const AttentionInputs& in, const Tensor& out, const Tensor& lse, const Tensor& g,
                        AttentionGrads& grads) {
  visit_floating(in.q.dtype(), "attention_backward", [&]<class T>() {
    const View<T> a(in);
    const int64_t d = a.d, J = a.J, R = a.b * a.h;
    const T* os = static_cast<const T*>(out.raw_data());
    const T* ls = static_cast<const T*>(lse.raw_data());
    const T* gs = static_cast<const T*>(g.raw_data());
    auto mut = [](Tensor& t) { return t.defined() ? static_cast<T*>(t.raw_data()) : nullptr; };
    T *dq = mut(grads.dq), *dk = mut(grads.dk), *dv = mut(grads.dv), *dnk = mut(grads.dnull_k),
      *dnv = mut(grads.dnull_v), *dskv = mut(grads.dscore_kv), *dsq = mut(grads.dscore_q);
    // Sums over heads / batch: [b, r, m], [b, n], [h, d] x 2. Each (batch, head) row adds one
    // term to each of its entries; the rows run in parallel, so each keeps its terms (part_*),
    // and they are added afterwards in row order (b outer, h inner), the serial loop's order:
    // the same sums, bit for bit.
    std::vector<double> part_sq(dsq ? R * a.n : 0), part_skv(dskv ? R * a.m : 0), part_nk(dnk ? R * d : 0),
        part_nv(dnv ? R * d : 0);
    parallel_rows(R, double(3 * a.n * J * d), [&](int64_t bh) {
      const int64_t bi = bh / a.h, hh = bh % a.h;
      std::vector<double> s(J), dk_acc(J * d, 0.0), dv_acc(J * d, 0.0), dqt(d), kt(J * d), vt(J * d), qt(a.n * d);
      const bool full = a.fully_masked(bi, hh);
      a.head(bi, hh, kt, vt, qt);
      for (int64_t i = 0; i < a.n; ++i) {
        const int64_t row = (bi * a.h + hh) * a.n + i;
        const T* gi = gs + row * d;
        // p from the saved lse (the scores are recomputed; only the mask rule comes from `full`)
        const double* qi = &qt[i * d];
        a.scores(bi, hh, qi, kt, full, s);
        const double L = double(ls[row]);
        double Di = 0;
        for (int64_t e = 0; e < d; ++e) Di += double(gi[e]) * double(os[row * d + e]);
        std::fill(dqt.begin(), dqt.end(), 0.0);
        for (int64_t j = 0; j < J; ++j) {
          const double p = std::exp(s[j] - L);
          if (p == 0.0) continue;
          for (int64_t e = 0; e < d; ++e) dv_acc[j * d + e] += p * double(gi[e]);
          if (full || a.masked(bi, hh, j)) continue;  // ds = 0 on masked slots
          double dp = 0;
          for (int64_t e = 0; e < d; ++e) dp += double(gi[e]) * vt[j * d + e];
          const double ds = p * (dp - Di) * a.scale;  // scale folded in: ds * scale
          for (int64_t e = 0; e < d; ++e) {
            dqt[e] += ds * kt[j * d + e];
            dk_acc[j * d + e] += ds * qi[e];
          }
        }
        const double sqi = a.sq ? double(a.sq[bi * a.n + i]) : 1.0;
        if (dq)
          for (int64_t e = 0; e < d; ++e) dq[row * d + e] = T(sqi * dqt[e]);
        if (dsq) {
          double t = 0;
          for (int64_t e = 0; e < d; ++e) t += dqt[e] * double(a.q[row * d + e]);
          part_sq[bh * a.n + i] = t;
        }
      }
      // the slots' gradients: null key (slot 0) into the [h, d] sums, real keys through the scores
      for (int64_t j = 0; j < J; ++j) {
        const int64_t t = a.key_of(j);
        if (t < 0) {
          for (int64_t e = 0; e < d; ++e) {
            if (dnk) part_nk[bh * d + e] = dk_acc[j * d + e];
            if (dnv) part_nv[bh * d + e] = dv_acc[j * d + e];
          }
          continue;
        }
        const int64_t krow = ((bi * a.h + hh) * a.m + t) * d;
        const double sc = a.skv ? double(a.skv[a.route_row(bi, hh) + t]) : 1.0;
        const double sk = a.mkbs ? sc : 1.0;
        double dsc = 0;
        for (int64_t e = 0; e < d; ++e) {
          if (dk) dk[krow + e] = T(sk * dk_acc[j * d + e]);
          if (dv) dv[krow + e] = T(sc * dv_acc[j * d + e]);
          dsc += dv_acc[j * d + e] * double(a.v[krow + e]);
          if (a.mkbs) dsc += dk_acc[j * d + e] * double(a.k[krow + e]);
        }
        if (dskv) part_skv[bh * a.m + t] = dsc;
      }
    });
    std::vector<double> skv_acc(dskv ? a.b * a.r * a.m : 0, 0.0), sq_acc(dsq ? a.b * a.n : 0, 0.0);
    std::vector<double> nk_acc(dnk ? a.h * d : 0, 0.0), nv_acc(dnv ? a.h * d : 0, 0.0);
    for (int64_t bh = 0; bh < R; ++bh) {
      const int64_t bi = bh / a.h, hh = bh % a.h;
      if (dsq)
        for (int64_t i = 0; i < a.n; ++i) sq_acc[bi * a.n + i] += part_sq[bh * a.n + i];
      if (dskv)
        for (int64_t t = 0; t < a.m; ++t) skv_acc[a.route_row(bi, hh) + t] += part_skv[bh * a.m + t];
      for (int64_t e = 0; e < d; ++e) {
        if (dnk && a.has_null) nk_acc[hh * d + e] += part_nk[bh * d + e];
        if (dnv && a.has_null) nv_acc[hh * d + e] += part_nv[bh * d + e];
      }
    }
    for (size_t x = 0; x < skv_acc.size(); ++x) dskv[x] = T(skv_acc[x]);
    for (size_t x = 0; x < sq_acc.size(); ++x) dsq[x] = T(sq_acc[x]);
    for (size_t x = 0; x < nk_acc.size(); ++x) dnk[x] = T(nk_acc[x]);
    for (size_t x = 0; x < nv_acc.size(); ++x) dnv[x] = T(nv_acc[x]);
  });
}

}  // namespace colt5::cpu
