/* A parameter set as one .npz file, to move a whole model to and from numpy
 * and PyTorch.
 *
 *     tg_npz_save("model.npz", &params);          // "l0.Wax", "head.W", ...
 *     m = numpy.load("model.npz"); m["l0.Wax"]     # an ndarray per tensor
 *     numpy.savez("back.npz", **{k: v.numpy() for k, v in state.items()})
 *     tg_npz_load("back.npz", &params);
 *
 * An .npz is numpy's zip archive of .npy files: member "<name>.npy" holds
 * the tensor called <name>. We write every member stored (uncompressed),
 * '<f4' or '<f8' in C order, in the order of the set; numpy.load reads it.
 * We read what numpy.savez writes, Zip64 extra fields included (numpy
 * always asks for them), and refuse compressed members (savez_compressed),
 * encrypted ones, members that are not .npy files, and archives that need
 * Zip64 for their size (over 4 GiB), each with a TG_ERR_FORMAT message that
 * names the file and the member.
 *
 * Loading checks the whole archive first - the zip structure, every CRC-32
 * of a member it loads, every .npy header, every shape against the
 * destination - and copies nothing unless all of it passes. Values are
 * converted to the destination's dtype (an f32 array from PyTorch loads into
 * an f64 model), as tg_npy_load_into and PyTorch's load_state_dict do. */
#ifndef TG_NPZ_H
#define TG_NPZ_H

#include "../core/api.h"
#include "../core/error.h"
#include "../core/params.h"
#include "checkpoint.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Write every tensor of params (any strides) as "<name>.npy". Overwrites
 * path; on error no file is left at path. */
TG_API tg_status tg_npz_save(const char *path, const tg_params *params);

/* Strict: the archive holds exactly the tensors of params (by name), each
 * with the destination's shape. */
TG_API tg_status tg_npz_load(const char *path, const tg_params *params);

/* PyTorch's strict=False: load the members that params asks for, list the
 * names it asks for that the archive lacks (left unchanged) and the members
 * nobody asked for (ignored) in *report (required; see checkpoint.h). */
TG_API tg_status tg_npz_load_nonstrict(const char *path, const tg_params *params,
                                       tg_load_report *report);

#ifdef __cplusplus
}
#endif

#endif
