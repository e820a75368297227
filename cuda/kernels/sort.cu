// CUDA kernels of the sort op group.
