// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011): a
// counter-based generator. philox(key, counter) is a pure function, so element i of a draw
// can be computed independently on any device: the CPU and the GPU give identical bits.
//
// Element i of a draw with generator (seed, offset) uses counter = offset + i and key = seed:
//   uniform: u = (first 32-bit word >> 8) * 2^-24 for float, (53 bits of words 0,1) * 2^-53
//            for double, in [0, 1);
//   normal:  Box–Muller on two uniforms from the words (0,1) and (2,3), with our own log and
//            cos (below) so that CPU and GPU agree to the bit;
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

// log and cos for Box–Muller, written with +, -, *, / and explicit fma only: every one of these
// is correctly rounded (IEEE 754) on the CPU and on the GPU, so both devices compute bit-identical
// normals (the libraries' own log/cos may differ by an ulp between devices).

// log(u) for u > 0: u = m 2^e with m in [sqrt(1/2), sqrt(2)); log m = 2 atanh(s), s = (m-1)/(m+1),
// |s| < 0.172, by its odd series to s^23 (truncation < 1e-18).
COLT5_HD double philox_log(double u) {
  int e = 0;
  double m = ::frexp(u, &e);  // u = m 2^e, m in [0.5, 1)
  if (m < 0.70710678118654752440) {
    m *= 2.0;
    e -= 1;
  }
  const double s = (m - 1.0) / (m + 1.0), z = s * s;
  double p = 1.0 / 23.0;
  for (int k = 21; k >= 1; k -= 2) p = ::fma(p, z, 1.0 / double(k));  // sum z^j / (2j+1)
  const double log_m = 2.0 * s * p;
  return ::fma(double(e), 0.69314718055994530942, log_m);
}

// cos(2 pi t) for t in [0, 1): quadrant q = round(4t), x = 2 pi (t - q/4) in [-pi/4, pi/4], then
// the Taylor series of sin or cos to x^19 / x^18 (truncation < 1e-17).
COLT5_HD double philox_cos2pi(double t) {
  const double q = ::floor(4.0 * t + 0.5);
  const double x = (t - 0.25 * q) * 6.283185307179586477;
  const double z = x * x;
  double c = 1.0, sn = 1.0;
  for (int k = 18; k >= 2; k -= 2) c = ::fma(-z / double(k * (k - 1)), c, 1.0);  // 1 - z/2 (1 - z/12 (...))
  for (int k = 19; k >= 3; k -= 2) sn = ::fma(-z / double(k * (k - 1)), sn, 1.0);
  const double sin_x = x * sn;
  switch (int(q) & 3) {
    case 0: return c;
    case 1: return -sin_x;
    case 2: return -c;
    default: return sin_x;
  }
}

template <class T>
COLT5_HD T philox_normal(const Philox4& r) {
  // u1 in (0, 1]: avoid log(0).
  const double u1 = 1.0 - philox_uniform<double>(r.w[0], r.w[1]);
  const double u2 = philox_uniform<double>(r.w[2], r.w[3]);
  return T(::sqrt(-2.0 * philox_log(u1)) * philox_cos2pi(u2));
}

}  // namespace colt5
