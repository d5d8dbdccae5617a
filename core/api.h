/* The library's surface: the export macro, the version, and what the ABI is.
 *
 * Export. The shared library is built with -fvisibility=hidden, so a function
 * is exported only when its declaration in an installed header starts with
 * TG_API:
 *
 *     TG_API tg_tensor *tg_tensor_zeros(tg_dtype dtype, int ndim, const int64_t *shape);
 *
 * Internal functions shared between the library's files are declared
 * without it in headers that are not installed (core/iter.h, ops/internal.h,
 * ...). `make test` compares the symbols the installed library exports with
 * the functions its installed headers declare, and names any difference.
 *
 * Version. TG_VERSION_* is the version of the headers a program was compiled
 * with; tg_version() the version of the library it runs with (they differ
 * when a program meets a newer shared library). The shared library's soname
 * follows the ABI: libtapegrad.so.0.<minor> while the major version is 0
 * (every minor release may break the ABI), libtapegrad.so.<major> from 1.0
 * (only a major release may).
 *
 * ABI. Programs compiled against these headers depend on:
 *   - every function's signature;
 *   - the value of every enum constant and #define (TG_MAX_DIMS, TG_F32, ...);
 *   - the size and field order of every struct defined in an installed
 *     header, because programs allocate them or read their fields. Every
 *     struct defined in a header that tapegrad.h includes is such a struct:
 *     tg_tensor, tg_param, tg_params, tg_rng, tg_state, tg_recurrent and its
 *     layers, options and call, tg_linear, tg_embedding, tg_entry, tg_op,
 *     tg_op_profile, tg_gradcheck_options and _result, tg_sgd_options,
 *     tg_adam_options, tg_lr_schedule, tg_cross_entropy_options,
 *     tg_checkpoint_int, tg_load_report, tg_text, the fused kernels' structs
 *     (nn/fused.h) and the course's caches and gradients (nn/course.h).
 * Changing any of these is an ABI break. The opaque types tg_tape, tg_sgd,
 * tg_adam and tg_batcher are not part of it: programs only hold pointers. */
#ifndef TG_API_H
#define TG_API_H

#define TG_VERSION_MAJOR 0
#define TG_VERSION_MINOR 3
#define TG_VERSION_PATCH 0
/* "major.minor.patch", spelled from the three numbers so it cannot drift. */
#define TG_VERSION_STRING                                                                   \
    TG_VERSION_STR_(TG_VERSION_MAJOR) "." TG_VERSION_STR_(TG_VERSION_MINOR) "."             \
        TG_VERSION_STR_(TG_VERSION_PATCH)
#define TG_VERSION_STR_(x) TG_VERSION_STR2_(x)
#define TG_VERSION_STR2_(x) #x
/* One number that grows with every release: 10000 * major + 100 * minor + patch. */
#define TG_VERSION_NUMBER (10000 * TG_VERSION_MAJOR + 100 * TG_VERSION_MINOR + TG_VERSION_PATCH)

#ifndef TG_API
#if defined(__GNUC__)
#define TG_API __attribute__((visibility("default")))
#else
#define TG_API
#endif
#endif

/* A status that must not be dropped: ignoring it leaves the program running
 * on something other than what it asked for (compilers warn). */
#if defined(__GNUC__)
#define TG_NODISCARD __attribute__((warn_unused_result))
#else
#define TG_NODISCARD
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* The running library's version, e.g. "0.3.0". */
TG_API const char *tg_version(void);
/* The same as TG_VERSION_NUMBER of the running library, e.g. 200. */
TG_API int tg_version_number(void);

#ifdef __cplusplus
}
#endif

#endif
