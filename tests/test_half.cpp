// The 16-bit storage dtypes (core/half.h): rounding to nearest even at every edge of both
// formats, conversions through Tensor::to, fill, printing, safetensors, and a clear error from
// the ops that compute.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "autograd/ops.h"
#include "nn/safetensors.h"

using namespace colt5;
using doctest::Contains;

namespace {

uint16_t bf(float f) { return to_bfloat16(f).bits; }
uint16_t hf(float f) { return to_float16(f).bits; }

}  // namespace

TEST_CASE("bfloat16: round to nearest even, infinity, NaN") {
  CHECK(bf(1.0f) == 0x3f80);
  CHECK(bf(-2.0f) == 0xc000);
  CHECK(bf(0.0f) == 0x0000);
  CHECK(bf(-0.0f) == 0x8000);
  // 1 + 2^-8 lies halfway between 1 and 1 + 2^-7: ties go to the even mantissa (1.0).
  CHECK(bf(1.0f + std::ldexp(1.0f, -8)) == 0x3f80);
  CHECK(bf(1.0f + 3 * std::ldexp(1.0f, -8)) == 0x3f82);      // halfway, odd below: rounds up
  CHECK(bf(1.0f + std::ldexp(1.0f, -8) + std::ldexp(1.0f, -20)) == 0x3f81);  // just above halfway
  CHECK(bf(std::numeric_limits<float>::max()) == 0x7f80);    // above bfloat16's max: infinity
  CHECK(bf(3.3895e38f) == 0x7f7f);                           // bfloat16's max
  CHECK(bf(INFINITY) == 0x7f80);
  CHECK(bf(-INFINITY) == 0xff80);
  CHECK(std::isnan(to_float(to_bfloat16(NAN))));
  // a NaN whose set mantissa bits are all below bit 16: truncation alone would make it infinite
  CHECK(std::isnan(to_float(to_bfloat16(std::bit_cast<float>(0x7f800001u)))));
  CHECK(to_float(bfloat16{0x3f81}) == 1.0f + std::ldexp(1.0f, -7));
  // Every bfloat16 survives float and back.
  for (uint32_t b = 0; b < 0x10000; ++b) {
    const float f = to_float(bfloat16{uint16_t(b)});
    if (!std::isnan(f)) REQUIRE(bf(f) == b);
  }
}

TEST_CASE("float16: round to nearest even, subnormals, overflow, NaN") {
  CHECK(hf(1.0f) == 0x3c00);
  CHECK(hf(-2.0f) == 0xc000);
  CHECK(hf(65504.0f) == 0x7bff);   // the largest half
  CHECK(hf(65519.0f) == 0x7bff);   // below the halfway point 65520
  CHECK(hf(65520.0f) == 0x7c00);   // halfway, to the even side: infinity
  CHECK(hf(1e6f) == 0x7c00);
  CHECK(hf(-INFINITY) == 0xfc00);
  CHECK(hf(std::ldexp(1.0f, -14)) == 0x0400);              // the smallest normal
  CHECK(hf(std::ldexp(1.0f, -24)) == 0x0001);              // the smallest subnormal
  CHECK(hf(std::ldexp(1.0f, -25)) == 0x0000);              // halfway to 0: even
  CHECK(hf(3 * std::ldexp(1.0f, -25)) == 0x0002);          // 1.5 units: rounds to 2
  CHECK(hf(std::ldexp(1.0f, -14) - std::ldexp(1.0f, -26)) == 0x0400);  // rounds up into the normals
  CHECK(hf(1.0f + std::ldexp(1.0f, -11)) == 0x3c00);       // halfway between 1 and 1 + 2^-10
  CHECK(hf(1.0f + 3 * std::ldexp(1.0f, -11)) == 0x3c02);
  CHECK(hf(-0.0f) == 0x8000);
  CHECK(std::isnan(to_float(to_float16(NAN))));
  CHECK(to_float(float16{0x3555}) == doctest::Approx(1.0 / 3).epsilon(1e-3));
  for (uint32_t b = 0; b < 0x10000; ++b) {
    const float f = to_float(float16{uint16_t(b)});
    if (!std::isnan(f)) REQUIRE(hf(f) == b);
  }
}

TEST_CASE("16-bit dtypes as tensors: convert, fill, print, save; computing ops refuse them") {
  const Tensor x = from_vector<float>({1.0f, 1.0f + std::ldexp(1.0f, -8), -3.5f, 70000.0f}, {2, 2});
  const Tensor b = x.to(DType::BFloat16), h = x.to(DType::Float16);
  CHECK(b.dtype() == DType::BFloat16);
  CHECK(b.element_size() == 2);
  CHECK(b.to(DType::Float32).to_vector<float>() == std::vector<float>{1.0f, 1.0f, -3.5f, 70144.0f});
  // float16 holds 1 + 2^-8 exactly (10 mantissa bits) and overflows above 65504.
  CHECK(h.to(DType::Float32).to_vector<float>() ==
        std::vector<float>{1.0f, 1.0f + std::ldexp(1.0f, -8), -3.5f, INFINITY});
  CHECK(b.to(DType::Float16).to(DType::Float64).to_vector<double>() == std::vector<double>{1.0, 1.0, -3.5, INFINITY});
  // A transposed view made contiguous keeps the values.
  CHECK(b.transpose(0, 1).contiguous().to(DType::Float32).to_vector<float>() ==
        std::vector<float>{1.0f, -3.5f, 1.0f, 70144.0f});
  CHECK(full({3}, 0.1, DType::BFloat16).to(DType::Float32).to_vector<float>() ==
        std::vector<float>(3, to_float(to_bfloat16(0.1f))));
  CHECK(zeros({2}, DType::Float16).to(DType::Float32).to_vector<float>() == std::vector<float>{0.0f, 0.0f});
  CHECK(b.to_string().find("dtype=bfloat16") != std::string::npos);
  CHECK(b.to_string().find("-3.5") != std::string::npos);

  // safetensors: written as BF16 / F16, read back widened to float32 (exactly).
  const std::string bytes = nn::serialize_safetensors({{"b", b}, {"h", h}});
  CHECK(bytes.find("\"BF16\"") != std::string::npos);
  CHECK(bytes.find("\"F16\"") != std::string::npos);
  const nn::SafetensorsFile f = nn::parse_safetensors(bytes);
  CHECK(f.tensors.at("b").to_vector<float>() == b.to(DType::Float32).to_vector<float>());
  CHECK(f.tensors.at("h").to_vector<float>() == h.to(DType::Float32).to_vector<float>());

  // Arithmetic: convert first.
  CHECK_THROWS_WITH_AS(add(b, b),
                       Contains("add: argument 'a' expected a float32, float64, integer or bool tensor, got bfloat16"),
                       Error);
  CHECK_THROWS_WITH_AS(relu(h), Contains("float16"), Error);
  // Products are the exception: 16-bit operands, float32 result (tests/test_autocast.cpp).
  CHECK(matmul(h, h).dtype() == DType::Float32);
  CHECK_THROWS_WITH_AS(gather(b, 1, zeros({2, 1}, DType::Int64)), Contains("gather: argument 'x'"), Error);
}
