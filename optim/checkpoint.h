/* Checkpoints: named tensors (model parameters, optimizer state), the random
 * generator and a few integers (step, epoch) in one file, so that training
 * resumes bit-exactly.
 *
 *     tg_params all = {0};
 *     tg_params_extend(&all, NULL, model);       // "Wax", "Waa", ...
 *     tg_adam_state(opt, &all);                  // "adam.m.Wax", ..., "adam.step"
 *     tg_checkpoint_int meta[] = {{"epoch", epoch}};
 *     tg_checkpoint_save("run.ckpt", &all, &rng, meta, 1);
 *     ...
 *     tg_checkpoint_load("run.ckpt", &all, &rng, meta, 1);   // meta[0].value = epoch
 *
 * Saving is atomic: the file is written to a new temporary file beside it,
 * "<path>.<pid>.tmp" (created exclusively, never through a symbolic link,
 * with the mode of the file it replaces), flushed and fsync'ed, renamed over
 * path, and the directory is fsync'ed (core/files.h). A crash at any moment
 * leaves either the old file or the new one at path, never a mix; so do two
 * processes saving to the same path at once: each writes its own temporary
 * file, and a reader sees one whole checkpoint or the other. A save killed
 * before its rename leaves its temporary file behind (delete it at will).
 *
 * Loading validates the whole file first - magic, version, byte order,
 * every entry's CRC-32 and the whole-file CRC-32, then that the file holds
 * exactly the entries asked for (names, kinds, dtypes and shapes equal to
 * the destination tensors) - and only then copies anything. A refused file
 * leaves every destination (tensors, generator, integers) untouched; the
 * message names the file and the problem, e.g.
 *     checkpoint run.ckpt: tensor 'Waa' has shape (50,50), the model expects (64,64)
 *
 * File format, version 1. Every integer is little-endian on every host;
 * u32/u64/i64 are 4/8/8 bytes. Offsets in bytes.
 *
 *   header (20 bytes)
 *     0   8  magic          89 54 47 43 4B 50 54 0A   ("\x89TGCKPT\n")
 *     8   4  version        u32 = 1
 *    12   4  byte order     u32 0x01020304, i.e. the bytes 04 03 02 01
 *    16   4  entry count    u32
 *   entries, one after another, each:
 *     +0  4  name length L  u32, 1..4096
 *     +4  L  name           bytes, no terminator; unique within the file
 *         4  kind           u32: 1 = f32 tensor, 2 = f64 tensor,
 *                                3 = i64 integer, 4 = MT19937 generator
 *         4  ndim           u32, 0..6 (0 for integers and the generator)
 *     8*ndim shape          u64 each
 *         8  byte length B  u64: numel * 4 or 8 for tensors, 8 for an
 *                           integer, 2512 for the generator
 *         4  CRC-32         u32, of the B payload bytes below
 *         B  payload        tensors: IEEE-754 values in C order of the shape;
 *                           integer: one i64;
 *                           generator: 624 u32 key words, u32 position
 *                           (0..624), u32 has_gauss (0 or 1), f64 gauss
 *   trailer (16 bytes)
 *     +0  4  end marker     "TEND"
 *     +4  8  file length    u64, the whole file including this trailer
 *    +12  4  CRC-32         u32, of every byte of the file before this field
 *
 * CRC-32 is the zlib/PNG one (optim/crc32.h). */
#ifndef TG_CHECKPOINT_H
#define TG_CHECKPOINT_H

#include <stdbool.h>
#include <stdint.h>

#include "../core/api.h"
#include "../core/error.h"
#include "../core/params.h"
#include "../core/rng.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TG_CHECKPOINT_VERSION 1
#define TG_CHECKPOINT_NAME_MAX 4096
/* Entries a checkpoint may hold (a file claiming more is refused unread). */
#define TG_CHECKPOINT_MAX_ENTRIES 1000000

/* An integer stored under a name (step, epoch, ...). */
typedef struct {
    const char *name;
    int64_t value;
} tg_checkpoint_int;

/* Save tensors (may be NULL: none), rng (NULL: none) and n_ints integers.
 * Tensors may be views of any strides; they are stored in C order. Every
 * tensor is checked first (tg_tensor_check: dtype, at most 6 dimensions,
 * shape, strides), and names must be non-empty and unique. */
TG_API tg_status tg_checkpoint_save(const char *path, const tg_params *tensors, const tg_rng *rng,
                                    const tg_checkpoint_int *ints, int n_ints);

/* Load what tg_checkpoint_save wrote into the same set of destinations: the
 * file must hold exactly the tensors named in `tensors` (same dtypes and
 * shapes; copied into them, any strides), a generator if and only if rng is
 * not NULL, and exactly the integers named in ints[] (their values are
 * filled in). On any error nothing is changed. This is PyTorch's
 * load_state_dict(strict=True); tg_checkpoint_load_nonstrict is strict=False. */
TG_API tg_status tg_checkpoint_load(const char *path, const tg_params *tensors, tg_rng *rng,
                                    tg_checkpoint_int *ints, int n_ints);

/* What a non-strict load did. PyTorch's load_state_dict(strict=False)
 * returns the same two lists (missing_keys, unexpected_keys). */
typedef struct {
    int n_loaded;       /* destinations filled: tensors, the generator, integers */
    int n_missing;      /* asked for but not in the file: left unchanged */
    int n_unexpected;   /* in the file but not asked for: ignored */
    char **missing;     /* their names; release with tg_load_report_free */
    char **unexpected;
} tg_load_report;

/* PyTorch's strict=False: load what the file has of what is asked for, list
 * the rest in *report (required: dropping it would hide a model that did
 * not load). An entry that is loaded must still match exactly (kind,
 * dtype, shape), and the whole file is validated before anything is
 * copied: on error nothing changes and *report is empty. Use it to load the
 * model part of a training checkpoint (model + optimizer + generator) into
 * an inference program, or a model into a bigger one. */
TG_API tg_status tg_checkpoint_load_nonstrict(const char *path, const tg_params *tensors,
                                              tg_rng *rng, tg_checkpoint_int *ints, int n_ints,
                                              tg_load_report *report);
/* Free the names of a report and zero it (a zeroed report is fine too). */
TG_API void tg_load_report_free(tg_load_report *report);

/* A model-only checkpoint: the tensors of params and nothing else (no
 * optimizer state, generator or integers), what an inference program loads
 * with tg_checkpoint_load(path, params, NULL, NULL, 0). */
TG_API tg_status tg_checkpoint_save_model(const char *path, const tg_params *params);

/* One integer of a checkpoint (after validating the whole file), e.g. the
 * sizes needed to build the model that the rest of the file fills. */
TG_API tg_status tg_checkpoint_read_int(const char *path, const char *name, int64_t *value);

/* A checkpoint read once and checked whole (every CRC, the structure,
 * unique names), to ask several questions without reading the file again:
 * its integers first (the sizes of the model to build), then restore.
 *
 *     tg_checkpoint *ck = tg_checkpoint_open("run.ckpt");
 *     tg_checkpoint_get_int(ck, "hidden", &hidden);
 *     ... build the model ...
 *     tg_checkpoint_restore(ck, &all, &rng, meta, n);
 *     tg_checkpoint_close(ck);
 */
typedef struct tg_checkpoint tg_checkpoint;
TG_API tg_checkpoint *tg_checkpoint_open(const char *path); /* NULL on error */
TG_API void tg_checkpoint_close(tg_checkpoint *ck);
/* Whether the file holds an entry of this name (of any kind). */
TG_API bool tg_checkpoint_has(const tg_checkpoint *ck, const char *name);
TG_API tg_status tg_checkpoint_get_int(const tg_checkpoint *ck, const char *name, int64_t *value);
/* tg_checkpoint_load from an opened file (the same rules); with a report,
 * tg_checkpoint_load_nonstrict's. */
TG_API tg_status tg_checkpoint_restore(const tg_checkpoint *ck, const tg_params *tensors,
                                       tg_rng *rng, tg_checkpoint_int *ints, int n_ints);
TG_API tg_status tg_checkpoint_restore_nonstrict(const tg_checkpoint *ck,
                                                 const tg_params *tensors, tg_rng *rng,
                                                 tg_checkpoint_int *ints, int n_ints,
                                                 tg_load_report *report);

/* The first half of tg_checkpoint_save: write and fsync the temporary file
 * ("<path>.<pid>.tmp" unless that name is taken) but do not rename it over
 * path. Tests use it to show what a crash just before the rename leaves
 * behind (the old checkpoint, intact, and the temporary file). */
TG_API tg_status tg_checkpoint_write_temp(const char *path, const tg_params *tensors,
                                          const tg_rng *rng, const tg_checkpoint_int *ints,
                                          int n_ints);

#ifdef __cplusplus
}
#endif

#endif
