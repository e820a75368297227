// No kernels here: cat, stack, pad and flip are composed from copy, fill, arange and index_select.
