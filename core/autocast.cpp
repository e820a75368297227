// Autocast state (see autocast.h): one dtype per thread.
#include "core/autocast.h"

#include "core/error.h"

namespace colt5 {

namespace {
thread_local DType g_autocast = DType::Float32;
}

AutocastGuard::AutocastGuard(DType dtype) : previous_(g_autocast) {
  COLT5_CHECK(dtype == DType::BFloat16 || dtype == DType::Float16 || dtype == DType::Float32,
              "AutocastGuard: argument 'dtype' expected bfloat16, float16 or float32 (off), got ", dtype_name(dtype));
  g_autocast = dtype;
}

AutocastGuard::~AutocastGuard() { g_autocast = previous_; }

DType autocast_dtype() { return g_autocast; }

}  // namespace colt5
