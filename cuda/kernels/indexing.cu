// CUDA kernels of the indexing op group.
