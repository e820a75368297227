// CUDA kernels of the linalg op group.
