// COLT5_HD marks small inline math functions that CPU and CUDA kernels share, so that one
// formula serves both (compiled for host by g++, for host and device by nvcc).
#pragma once

#if defined(__CUDACC__)
#define COLT5_HD __host__ __device__ __forceinline__
#else
#define COLT5_HD inline
#endif
