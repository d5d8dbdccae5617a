/* tapegrad: reverse-mode automatic differentiation and recurrent networks in C.
 * One include for the whole library: #include <tapegrad/tapegrad.h> once
 * installed. Every header listed here is installed (and only these, with
 * core/api.h); see core/api.h for the version and what the ABI is. */
#ifndef TAPEGRAD_H
#define TAPEGRAD_H

#include "core/api.h"
#include "core/cpu.h"
#include "core/error.h"
#include "core/npy.h"
#include "core/params.h"
#include "core/platform.h"
#include "core/rng.h"
#include "core/tape.h"
#include "core/tensor.h"
#include "core/threadpool.h"
#include "nn/course.h"
#include "nn/fused.h"
#include "nn/gradcheck.h"
#include "nn/recurrent.h"
#include "ops/gemm.h"
#include "ops/ops.h"
#include "optim/checkpoint.h"
#include "optim/crc32.h"
#include "optim/npz.h"
#include "optim/optim.h"
#include "optim/text.h"

#endif
