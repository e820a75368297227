// Element types. Floating ops are instantiated for float and double (double is what gradcheck
// uses); integer and bool tensors carry indices and masks. BFloat16 and Float16 are storage
// types (core/half.h): they can be created, filled, copied, converted, printed and saved, and
// are converted to float32 for anything else (an op handed one says so).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

#include "core/error.h"
#include "core/half.h"

namespace colt5 {

enum class DType : uint8_t { Float32, Float64, Int64, Int32, Bool, BFloat16, Float16 };

constexpr size_t dtype_size(DType t) {
  switch (t) {
    case DType::Float32: return 4;
    case DType::Float64: return 8;
    case DType::Int64: return 8;
    case DType::Int32: return 4;
    case DType::Bool: return 1;
    case DType::BFloat16: return 2;
    case DType::Float16: return 2;
  }
  return 0;
}

constexpr const char* dtype_name(DType t) {
  switch (t) {
    case DType::Float32: return "float32";
    case DType::Float64: return "float64";
    case DType::Int64: return "int64";
    case DType::Int32: return "int32";
    case DType::Bool: return "bool";
    case DType::BFloat16: return "bfloat16";
    case DType::Float16: return "float16";
  }
  return "?";
}

inline std::ostream& operator<<(std::ostream& os, DType t) { return os << dtype_name(t); }

constexpr bool is_floating(DType t) { return t == DType::Float32 || t == DType::Float64; }
constexpr bool is_integral(DType t) { return t == DType::Int64 || t == DType::Int32; }
constexpr bool is_half(DType t) { return t == DType::BFloat16 || t == DType::Float16; }

// The C++ type of each dtype, and back.
template <class T> struct dtype_of;
template <> struct dtype_of<float> { static constexpr DType value = DType::Float32; };
template <> struct dtype_of<double> { static constexpr DType value = DType::Float64; };
template <> struct dtype_of<int64_t> { static constexpr DType value = DType::Int64; };
template <> struct dtype_of<int32_t> { static constexpr DType value = DType::Int32; };
template <> struct dtype_of<bool> { static constexpr DType value = DType::Bool; };
template <> struct dtype_of<bfloat16> { static constexpr DType value = DType::BFloat16; };
template <> struct dtype_of<float16> { static constexpr DType value = DType::Float16; };
template <class T> inline constexpr DType dtype_v = dtype_of<T>::value;

// visit_floating(dt, "op", [&]<class T>() { ... }) calls the lambda with T = float or double,
// and throws for any other dtype (naming the op). visit_all also covers the integer and bool
// types (a 16-bit float is an error there: convert it first); visit_storage covers every dtype
// (for the ops that only move or convert elements: copy, fill, printing).
template <class F>
void visit_floating(DType t, const char* op, F&& f) {
  switch (t) {
    case DType::Float32: f.template operator()<float>(); return;
    case DType::Float64: f.template operator()<double>(); return;
    default: fail(str(op, ": expected a floating dtype (float32 or float64), got ", dtype_name(t)));
  }
}

template <class F>
void visit_all(DType t, F&& f) {
  switch (t) {
    case DType::Float32: f.template operator()<float>(); return;
    case DType::Float64: f.template operator()<double>(); return;
    case DType::Int64: f.template operator()<int64_t>(); return;
    case DType::Int32: f.template operator()<int32_t>(); return;
    case DType::Bool: f.template operator()<bool>(); return;
    case DType::BFloat16:
    case DType::Float16: break;
  }
  fail(str("this op does not take ", dtype_name(t), " tensors (a storage dtype: convert to float32 first)"));
}

template <class F>
void visit_storage(DType t, F&& f) {
  switch (t) {
    case DType::BFloat16: f.template operator()<bfloat16>(); return;
    case DType::Float16: f.template operator()<float16>(); return;
    default: visit_all(t, std::forward<F>(f));
  }
}

// Floating, int64 and int32 (arithmetic that makes no sense on bool).
template <class F>
void visit_numeric(DType t, const char* op, F&& f) {
  switch (t) {
    case DType::Float32: f.template operator()<float>(); return;
    case DType::Float64: f.template operator()<double>(); return;
    case DType::Int64: f.template operator()<int64_t>(); return;
    case DType::Int32: f.template operator()<int32_t>(); return;
    default: fail(str(op, ": expected a numeric dtype, got ", dtype_name(t)));
  }
}

}  // namespace colt5
