// parallel_rows: the CPU kernels' one way of using several cores. Rows [0, R) are split into
// contiguous blocks, one per thread (as many as the machine has, but only as many as the work
// is worth: about one thread per 2e5 units of work_per_row * R). A row is computed by exactly
// one thread with the same arithmetic as in a serial loop, so results do not depend on the
// number of threads; a kernel whose rows add into shared sums keeps per-row partials and adds
// them in row order afterwards (see cpu::attention_backward).
#pragma once

#include <algorithm>
#include <cstdint>
#include <thread>
#include <vector>

namespace colt5::cpu {

template <class F>
void parallel_rows(int64_t R, double work_per_row, F&& f) {
  const unsigned hw = std::max(1u, std::thread::hardware_concurrency());
  const int64_t threads = std::min<int64_t>({int64_t(hw), R, int64_t(work_per_row * double(R) / 2e5) + 1});
  if (threads <= 1) {
    for (int64_t r = 0; r < R; ++r) f(r);
    return;
  }
  std::vector<std::thread> pool;
  const int64_t per = (R + threads - 1) / threads;
  for (int64_t t = 1; t < threads; ++t)
    pool.emplace_back([&, t] {
      for (int64_t r = t * per; r < std::min(R, (t + 1) * per); ++r) f(r);
    });
  for (int64_t r = 0; r < std::min(R, per); ++r) f(r);
  for (auto& th : pool) th.join();
}

}  // namespace colt5::cpu
