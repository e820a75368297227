// The copying shape ops (cat, stack, pad, flip) have no CPU kernel of their own: they are built
// from the copy, fill, arange and gather kernels (see core/ops/shape_ops.h), so every device
// that has those runs them too.
#include "core/ops/shape_ops.h"
