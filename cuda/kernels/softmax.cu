// CUDA kernels of the softmax op group.
