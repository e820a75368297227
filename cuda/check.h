// Error checking for CUDA and cuBLAS calls and kernel launches. Every failure becomes a
// colt5::Error naming the call (or kernel), the file and line, and the CUDA error string.
//
// Launch checks: after every launch, COLT5_CHECK_LAUNCH("kernel_name") reads
// cudaGetLastError. With the environment variable COLT5_CUDA_SYNC=1 it also synchronises the
// stream, so that an asynchronous fault (an illegal address, say) is reported at the kernel that
// caused it rather than at some later call.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "core/error.h"

namespace colt5::cuda {

[[noreturn]] void throw_cuda_error(cudaError_t err, const char* what, const char* file, int line);
[[noreturn]] void throw_cublas_error(cublasStatus_t st, const char* what, const char* file, int line);
void check_launch(const char* kernel, cudaStream_t stream, const char* file, int line);
bool sync_after_each_kernel();  // COLT5_CUDA_SYNC=1

// COLT5_CUDA_PROFILE=1: a timing event after every launch (check_launch records it; cuBLAS
// calls record theirs), and at exit a table on stderr of GPU time per kernel name, most first.
// The time of a launch is from the previous event to its own: on a busy GPU that is the kernel's
// run time; where the GPU sat idle waiting for the host, that idle time is counted too (so a
// host-bound program shows it). Not during graph captures. Adds a host wait every 4096 launches.
bool profiling();
void profile_mark(const char* name, cudaStream_t stream);

}  // namespace colt5::cuda

#define CUDA_CHECK(call)                                                                  \
  do {                                                                                    \
    cudaError_t colt5_err_ = (call);                                                      \
    if (colt5_err_ != cudaSuccess) ::colt5::cuda::throw_cuda_error(colt5_err_, #call, __FILE__, __LINE__); \
  } while (0)

#define CUBLAS_CHECK(call)                                                                \
  do {                                                                                    \
    cublasStatus_t colt5_st_ = (call);                                                    \
    if (colt5_st_ != CUBLAS_STATUS_SUCCESS)                                               \
      ::colt5::cuda::throw_cublas_error(colt5_st_, #call, __FILE__, __LINE__);            \
  } while (0)

#define COLT5_CHECK_LAUNCH(kernel, stream) ::colt5::cuda::check_launch(kernel, stream, __FILE__, __LINE__)
