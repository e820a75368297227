// CUDA kernels of the loss op group.
