// CUDA kernels of the shape_ops op group.
