// CUDA kernels of the norm op group.
