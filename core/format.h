// fmt formatter for tensors (include only where needed: fmt is heavy to compile).
#pragma once
