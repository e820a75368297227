// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011): a
// counter-based generator. philox(key, counter) is a pure function, so element i of a draw
// can be computed independently on any device: the CPU and the GPU give identical bits.
//
// Element i of a draw with generator (seed, offset) uses counter = offset + i and key = seed:
//   uniform: u = (first 32-bit word >> 8) * 2^-24 for float, (53 bits of words 0,1) * 2^-53
//            for double, in [0, 1);
//   normal:  Box–Muller on two uniforms from the words (0,1) and (2,3);
//   integer: low + (64 bits of words 0,1) mod (high - low).
#pragma once

#include <cmath>
#include <cstdint>

#include "core/hd.h"

namespace colt5 {

struct Philox4 {
  uint32_t w[4];
};

COLT5_HD Philox4 philox4x32_10(uint64_t counter, uint64_t key) {
  constexpr uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;  // round multipliers
  constexpr uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;      // key schedule (golden ratio, sqrt 3)
  uint32_t c0 = uint32_t(counter), c1 = uint32_t(counter >> 32), c2 = 0, c3 = 0;
  uint32_t k0 = uint32_t(key), k1 = uint32_t(key >> 32);
  for (int round = 0; round < 10; ++round) {
    const uint64_t p0 = uint64_t(kMul0) * c0, p1 = uint64_t(kMul1) * c2;
    const uint32_t hi0 = uint32_t(p0 >> 32), lo0 = uint32_t(p0), hi1 = uint32_t(p1 >> 32), lo1 = uint32_t(p1);
    c0 = hi1 ^ c1 ^ k0;
    c1 = lo1;
    c2 = hi0 ^ c3 ^ k1;
    c3 = lo0;
    k0 += kW0;
    k1 += kW1;
  }
  return Philox4{{c0, c1, c2, c3}};
}

template <class T>
COLT5_HD T philox_uniform(uint32_t a, uint32_t b) {
  if constexpr (sizeof(T) == 4) {
    (void)b;
    return T(a >> 8) * T(5.9604644775390625e-08);  // 2^-24
  } else {
    const uint64_t bits = (uint64_t(a) << 21) ^ uint64_t(b >> 11);  // 53 bits
    return T(bits & ((uint64_t(1) << 53) - 1)) * T(1.1102230246251565e-16);  // 2^-53
  }
}

template <class T>
COLT5_HD T philox_normal(const Philox4& r) {
  // u1 in (0, 1]: avoid log(0).
  const double u1 = 1.0 - philox_uniform<double>(r.w[0], r.w[1]);
  const double u2 = philox_uniform<double>(r.w[2], r.w[3]);
  return T(::sqrt(-2.0 * ::log(u1)) * ::cos(6.283185307179586477 * u2));
}

}  // namespace colt5
