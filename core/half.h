// The two 16-bit floating formats, as storage types: bfloat16 and float16 (IEEE 754 binary16).
// Values are converted to float32 to compute; these types only hold bits and convert.
//
//   bfloat16: sign, 8 exponent bits, 7 mantissa bits: the top half of a float32. Same range as
//     float32 (max 3.3895e38), 8 significant bits (relative spacing 2^-7 = 7.8e-3).
//   float16:  sign, 5 exponent bits (bias 15), 10 mantissa bits. Normal values from 2^-14 to
//     65504; subnormals down to 2^-24; 11 significant bits (spacing 2^-10 = 9.8e-4).
//
// float -> 16 bits rounds to nearest, ties to even (as torch and the hardware converters do):
//   bfloat16: add 0x7fff + (bit 16 of the float) to the float's bits and keep the top 16; a carry
//     runs into the exponent, so the largest floats round to infinity as they should. NaN stays
//     a (quiet) NaN.
//   float16: values from 65520 (halfway between 65504 and 2^16) up become infinity; below 2^-14
//     the result is the nearest multiple of 2^-24 (subnormal, or 0x0400 = 2^-14 when it rounds
//     up to the smallest normal); otherwise the exponent is rebiased (127 - 15 = 112) and the
//     13 dropped mantissa bits rounded like bfloat16's 16.
// 16 bits -> float is exact (every value of both formats is a float32).
// A double is converted through float (double rounding, as torch's double -> bfloat16).
// The functions are COLT5_HD: the CPU and the CUDA kernels convert with the same code, so a
// conversion on the GPU gives the same bits as on the CPU.
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "core/hd.h"

namespace colt5 {

// The bits of a float and back (std::bit_cast is host-only).
COLT5_HD uint32_t float_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  return std::bit_cast<uint32_t>(f);
#endif
}
COLT5_HD float bits_float(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  return std::bit_cast<float>(u);
#endif
}

struct bfloat16 {
  uint16_t bits = 0;
};
struct float16 {
  uint16_t bits = 0;
};

COLT5_HD bfloat16 to_bfloat16(float f) {
  const uint32_t u = float_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return {uint16_t((u >> 16) | 0x0040u)};  // NaN: keep it quiet
  return {uint16_t((u + 0x7fffu + ((u >> 16) & 1u)) >> 16)};
}

COLT5_HD float to_float(bfloat16 h) { return bits_float(uint32_t(h.bits) << 16); }

COLT5_HD float16 to_float16(float f) {
  const uint32_t u = float_bits(f);
  const uint16_t sign = uint16_t((u >> 16) & 0x8000u);
  const uint32_t x = u & 0x7fffffffu;
  if (x > 0x7f800000u) return {uint16_t(sign | 0x7e00u | ((x >> 13) & 0x3ffu))};  // NaN (quiet)
  if (x >= 0x477ff000u) return {uint16_t(sign | 0x7c00u)};                          // >= 65520: infinity
  if (x < 0x38800000u) {  // below 2^-14: a multiple of 2^-24 (exact scaling, then round half to even)
#if defined(__CUDA_ARCH__)
    const float m = nearbyintf(bits_float(x) * 16777216.0f);
#else
    const float m = std::nearbyint(bits_float(x) * 16777216.0f);
#endif
    return {uint16_t(sign | uint16_t(m))};
  }
  const uint32_t r = x + 0xfffu + ((x >> 13) & 1u);
  return {uint16_t(sign | ((r >> 13) - (112u << 10)))};
}

COLT5_HD float to_float(float16 h) {
  const bool neg = h.bits >> 15;
  const int exp = (h.bits >> 10) & 0x1f;
  const int mant = h.bits & 0x3ff;
  float v;
  // Powers of two built from their bits (exact, and the same on host and device).
  if (exp == 0)
    v = float(mant) * bits_float(uint32_t(127 - 24) << 23);  // zero / subnormal: mant * 2^-24
  else if (exp == 31)
    v = mant ? bits_float(0x7fc00000u | (uint32_t(mant) << 13)) : bits_float(0x7f800000u);
  else
    v = float(mant | 0x400) * bits_float(uint32_t(127 + exp - 25) << 23);  // (1024 + mant) * 2^(exp - 25)
  return neg ? -v : v;
}

template <class T>
inline constexpr bool is_half_v = std::is_same_v<T, bfloat16> || std::is_same_v<T, float16>;

// static_cast<D>(s) extended to the 16-bit formats (through float).
template <class D, class S>
COLT5_HD D convert(S s) {
  if constexpr (is_half_v<S>) {
    if constexpr (is_half_v<D>) {
      if constexpr (std::is_same_v<D, S>) return s;
      else return convert<D>(to_float(s));
    } else {
      return static_cast<D>(to_float(s));
    }
  } else if constexpr (std::is_same_v<D, bfloat16>) {
    return to_bfloat16(static_cast<float>(s));
  } else if constexpr (std::is_same_v<D, float16>) {
    return to_float16(static_cast<float>(s));
  } else {
    return static_cast<D>(s);
  }
}

}  // namespace colt5
