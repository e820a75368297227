// Every public differentiable op of colt5, in one include.
#pragma once

#include "autograd/grad_mode.h"
#include "autograd/ops/attention.h"
#include "autograd/ops/coor_descent.h"
#include "autograd/ops/creation.h"
#include "autograd/ops/elementwise.h"
#include "autograd/ops/indexing.h"
#include "autograd/ops/linalg.h"
#include "autograd/ops/loss.h"
#include "autograd/ops/norm.h"
#include "autograd/ops/reduce.h"
#include "autograd/ops/shape_ops.h"
#include "autograd/ops/sinkhorn.h"
#include "autograd/ops/softmax.h"
#include "autograd/ops/sort.h"
#include "core/ops/copy.h"
#include "core/tensor.h"
