// CPU reference coordinate descent (contract in core/ops/coor_descent.h; the math and the
// derivation of the backward in autograd/ops/coor_descent.cpp). One row at a time, in float64,
// over the kept entries only: a masked entry of the reference contributes exp(-max - m) = 0 to
// every logsumexp and gets no gradient, so leaving it out is the same arithmetic.
//
// Forward, per row (K = the kept entries, eps_t the schedule, L = log k):
//   z_t,j = (s_j + b_{t-1,j}) / eps_t          (j in K; s + b_0 = 0)
//   a_t   = eps_t (L - lse_t),  lse_t = m + log sum_j exp(z_t,j - m),  m = max_j z_t,j
//   y_j   = exp((s_j + a_T + b_T,j) / eps_{T+1})
// Backward, per row, walking t = T..1 (h_t,j = [s_j + a_{t-1} > 0], p_t = softmax(z_t)):
//   gbar_j = g_j y_j / eps_{T+1} [s_j + a_T <= 0];  ds_j = gbar_j;  abar = sum_j gbar_j
//   for t = T..2:  dL += abar eps_t;  ds_j -= abar p_t,j (1 - h_t,j);  abar *= sum_j p_t,j h_t,j
//   dL += abar eps_1                           (z_1 = 0 does not depend on s)
#include <cmath>
#include <limits>
#include <vector>

#include "core/ops/coor_descent.h"

namespace colt5::cpu {

namespace {

// eps_1 .. eps_{T+1}, at index t.
std::vector<double> eps_schedule(const CoorDescentParams& p) {
  std::vector<double> e(size_t(p.n_iters) + 2, 0.0);
  e[1] = p.eps_start;
  for (int64_t t = 1; t <= p.n_iters; ++t) e[t + 1] = coor_descent_next_eps(e[t], p);
  return e;
}

// logsumexp over the kept entries of z (max subtracted, summed in index order).
double lse_kept(const std::vector<double>& z, const std::vector<char>& kept) {
  double m = -std::numeric_limits<double>::infinity();
  for (size_t j = 0; j < z.size(); ++j)
    if (kept[j]) m = std::max(m, z[j]);
  double sum = 0;
  for (size_t j = 0; j < z.size(); ++j)
    if (kept[j]) sum += std::exp(z[j] - m);
  return m + std::log(sum);
}

// z_t for the kept entries of one row: (s + b_{t-1}) / eps_t, with s + b_0 = 0 at t = 1.
void shifted_scores(const std::vector<double>& s, const std::vector<char>& kept, int64_t t, double a_prev,
                    double eps_t, std::vector<double>& z) {
  for (size_t j = 0; j < s.size(); ++j)
    z[j] = !kept[j] ? 0.0 : (t == 1 ? 0.0 : coor_descent_shift(s[j], a_prev)) / eps_t;
}

// Load row r of s (converted to double) and of the mask; returns the number of kept entries.
template <class T>
int64_t load_row(const T* s, const bool* mask, int64_t r, int64_t n, std::vector<double>& row,
                 std::vector<char>& kept) {
  int64_t count = 0;
  for (int64_t j = 0; j < n; ++j) {
    row[j] = double(s[r * n + j]);
    kept[j] = mask == nullptr || mask[r * n + j];
    count += kept[j];
  }
  return count;
}

}  // namespace

void coor_descent_forward(const Tensor& s, const Tensor& mask, const Tensor& logk, Tensor& y, Tensor& a,
                          const CoorDescentParams& p) {
  visit_floating(s.dtype(), "coor_descent", [&]<class T>() {
    const int64_t rows = s.size(0), n = s.size(1), iters = p.n_iters;
    const T* ss = static_cast<const T*>(s.raw_data());
    const bool* ms = mask.defined() ? static_cast<const bool*>(mask.raw_data()) : nullptr;
    const double* lk = static_cast<const double*>(logk.raw_data());
    T* ys = static_cast<T*>(y.raw_data());
    double* as = static_cast<double*>(a.raw_data());
    const std::vector<double> eps = eps_schedule(p);
    std::vector<double> row(n), z(n);
    std::vector<char> kept(n);
    for (int64_t r = 0; r < rows; ++r) {
      double* ar = as + r * iters;
      if (load_row(ss, ms, r, n, row, kept) == 0) {  // nothing to select: zeros
        for (int64_t t = 0; t < iters; ++t) ar[t] = 0.0;
        for (int64_t j = 0; j < n; ++j) ys[r * n + j] = T(0);
        continue;
      }
      double a_prev = 0.0;
      for (int64_t t = 1; t <= iters; ++t) {
        shifted_scores(row, kept, t, a_prev, eps[t], z);
        a_prev = eps[t] * (lk[r] - lse_kept(z, kept));
        ar[t - 1] = a_prev;
      }
      for (int64_t j = 0; j < n; ++j)
        ys[r * n + j] = kept[j] ? T(coor_descent_value(row[j] + a_prev, eps[iters + 1])) : T(0);
    }
  });
}

void coor_descent_backward(const Tensor& s, const Tensor& mask, const Tensor& logk, const Tensor& a,
                           const Tensor& g, Tensor& ds, Tensor& dlogk, const CoorDescentParams& p) {
  (void)logk;  // the gradient does not depend on the value of log k, only through the saved a_t
  visit_floating(s.dtype(), "coor_descent_backward", [&]<class T>() {
    const int64_t rows = s.size(0), n = s.size(1), iters = p.n_iters;
    const T* ss = static_cast<const T*>(s.raw_data());
    const bool* ms = mask.defined() ? static_cast<const bool*>(mask.raw_data()) : nullptr;
    const double* as = static_cast<const double*>(a.raw_data());
    const T* gs = static_cast<const T*>(g.raw_data());
    T* dss = static_cast<T*>(ds.raw_data());
    double* dl = dlogk.defined() ? static_cast<double*>(dlogk.raw_data()) : nullptr;
    const std::vector<double> eps = eps_schedule(p);
    const double eps_final = eps[iters + 1];
    std::vector<double> row(n), z(n), acc(n);
    std::vector<char> kept(n);
    for (int64_t r = 0; r < rows; ++r) {
      const double* ar = as + r * iters;  // ar[t - 1] = a_t
      if (load_row(ss, ms, r, n, row, kept) == 0) {
        for (int64_t j = 0; j < n; ++j) dss[r * n + j] = T(0);
        if (dl) dl[r] = 0.0;
        continue;
      }
      // The output: y_j = exp(min(x_j, 0) / eps_final), x_j = s_j + a_T.
      double abar = 0.0;
      for (int64_t j = 0; j < n; ++j) {
        acc[j] = 0.0;
        if (!kept[j]) continue;
        const double x = row[j] + ar[iters - 1];
        const double gbar = x > 0.0 ? 0.0 : double(gs[r * n + j]) * coor_descent_value(x, eps_final) / eps_final;
        acc[j] = gbar;
        abar += gbar;
      }
      // The iterations, newest first: abar = dL/da_t on entry to step t.
      double dlk = 0.0;
      for (int64_t t = iters; t >= 2; --t) {
        dlk += abar * eps[t];
        const double a_prev = ar[t - 2];
        shifted_scores(row, kept, t, a_prev, eps[t], z);
        const double lse = lse_kept(z, kept);
        double c = 0.0;  // sum_j p_j h_j = d a_{t-1}'s share
        for (int64_t j = 0; j < n; ++j) {
          if (!kept[j]) continue;
          const double pj = std::exp(z[j] - lse);
          if (row[j] + a_prev > 0.0) c += pj;
          else acc[j] -= abar * pj;
        }
        abar *= c;
      }
      dlk += abar * eps[1];
      for (int64_t j = 0; j < n; ++j) dss[r * n + j] = T(acc[j]);
      if (dl) dl[r] = dlk;
    }
  });
}

}  // namespace colt5::cpu
