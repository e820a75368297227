// Every nn header of colt5, in one include: the Module base, the basic layers, safetensors I/O,
// the light (local windowed) and heavy attention, the routers and the five routed CoLT5 modules.
#pragma once

#include "nn/attention.h"
#include "nn/image.h"
#include "nn/layers.h"
#include "nn/local_attention.h"
#include "nn/module.h"
#include "nn/rotary.h"
#include "nn/routed.h"
#include "nn/routers.h"
#include "nn/safetensors.h"
#include "nn/topk.h"
