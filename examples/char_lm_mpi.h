/* char_lm's data parallelism: the hooks char_lm.c calls, implemented over
 * MPI in char_lm_mpi.c when built by `make mpi` (CHAR_LM_MPI defined), and
 * as the one-process trivialities below otherwise, so that the ordinary
 * build needs no MPI and the hooks compile to almost nothing.
 *
 * With --mpi, R processes (ranks) each hold a replica of the model, and a
 * batch of B streams is split by stream: rank r takes streams r, r+R,
 * r+2R, ..., B/R of them. Each rank's backward gives the gradient of its
 * mean loss; one MPI_Allreduce sums the packed gradients (tg_params_pack)
 * and a scale of 1/R makes the mean over the whole batch, so R ranks
 * compute the step of one process with batch B (the only difference is
 * the order of one sum). Clipping, Adam, the schedule and the fault policy
 * then act on the same numbers on every rank, which therefore stay
 * bit-identical. Every rank keeps the carried states of all B streams (an
 * MPI_Allgather after each applied step), so snapshots and checkpoints hold
 * the same tensors as a one-process run's and resume on any number of
 * ranks. Rank 0 prints, evaluates, samples and saves; the other ranks'
 * standard output is dropped and their error output held back, so that a
 * failure is reported once: by rank 0, with the first failing rank's
 * message, after every rank has agreed to stop (never a hang). */
#ifndef TG_EXAMPLES_CHAR_LM_MPI_H
#define TG_EXAMPLES_CHAR_LM_MPI_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "char_lm_options.h"
#include "tapegrad.h"

typedef struct {
    int rank, size;  /* this process and how many there are: 0 and 1 without --mpi */
    int local_batch; /* streams per rank: batch / size */
    int seq;
    /* what the MPI build keeps between calls (unused otherwise) */
    int32_t *inputs, *targets; /* this rank's rows of a batch */
    tg_tensor columns[CHAR_LM_MAX_LAYERS][2]; /* its columns of the carried states */
    tg_state init[CHAR_LM_MAX_LAYERS];
    unsigned char *scratch; /* gathered states, broadcast state */
    size_t scratch_size;
    FILE *held; /* the held-back error output of ranks other than 0 */
} lm_dist;

/* Something every rank must agree on before it starts (a step, an option). */
typedef struct {
    const char *name;
    double value;
} lm_dist_fact;

/* Whether argv asks for --mpi (read before the options are parsed, so that
 * only rank 0 reports a bad option). */
static inline bool lm_dist_wanted(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--mpi") == 0)
            return true;
    return false;
}

/* An mpirun job that forgot --mpi would train R separate models that all
 * write the same files: refuse it (MPI launchers set these variables). */
static inline int lm_dist_check_launcher(bool mpi)
{
    const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"};
    for (int i = 0; i < 3 && !mpi; i++) {
        const char *v = getenv(vars[i]);
        if (v && atoi(v) > 1) {
            fprintf(stderr, "char_lm: started by an MPI launcher as one of %d processes, but "
                    "without --mpi: each would train its own model and write the same files; "
                    "add --mpi (to a char_lm built by make mpi)\n", atoi(v));
            return -1;
        }
    }
    return 0;
}

#ifdef CHAR_LM_MPI

/* MPI_Init when mpi, then the rank and the number of ranks; -1 after a
 * message if MPI cannot start. */
int lm_dist_start(lm_dist *d, bool mpi, int *argc, char ***argv);
/* MPI_Finalize; returns status for main. */
int lm_dist_end(lm_dist *d, int status);
/* Every rank says whether it failed; 0 if none did, else -1 on every rank,
 * after rank 0 has printed the first failing rank's message. */
int lm_dist_agree(lm_dist *d, bool failed);
/* Split batches of `batch` streams of `seq` ids over the ranks (batch must
 * divide), for the model rnn. Not collective: agree on its result. */
int lm_dist_setup(lm_dist *d, int batch, int seq, const tg_recurrent *rnn);
/* This rank's rows of a batch (inputs, targets (batch, seq)); its count.
 * Not collective, nor is lm_dist_states. */
int64_t lm_dist_rows(lm_dist *d, const int32_t *inputs, const int32_t *targets,
                     const int32_t **my_inputs, const int32_t **my_targets);
/* This rank's columns of the carried states (views, no copy). */
const tg_state *lm_dist_states(lm_dist *d, const tg_recurrent *rnn, const tg_state *carried);
/* After a backward: agree on failures (failed: this rank's step failed),
 * sum the losses and the packed gradients. *loss becomes the batch's mean
 * loss and *tape TG_ERR_NONFINITE if any rank's tape found a NaN or Inf.
 * -1 on every rank if any failed. */
int lm_dist_reduce(lm_dist *d, const tg_params *params, bool failed, tg_status *tape,
                   double *loss);
/* carried (all streams) = final (this rank's streams) of every rank. */
int lm_dist_keep_states(lm_dist *d, const tg_recurrent *rnn, tg_state *carried,
                        const tg_state *final);
/* Start every rank from rank 0's state: the ranks must agree on the size of
 * `state` and on facts[], then state and rng are broadcast. -1 on every
 * rank otherwise. */
int lm_dist_broadcast(lm_dist *d, const tg_params *state, tg_rng *rng,
                      const lm_dist_fact *facts, int n_facts);
/* Whether every rank holds the same values of `set` (a hash compared). */
int lm_dist_check_same(lm_dist *d, const tg_params *set);

#else /* one process */

static inline int lm_dist_start(lm_dist *d, bool mpi, int *argc, char ***argv)
{
    (void)argc, (void)argv;
    memset(d, 0, sizeof *d);
    d->size = 1;
    if (mpi) {
        fprintf(stderr, "char_lm: --mpi needs the MPI build: make mpi (it needs Open MPI: "
                "apt-get install openmpi-bin libopenmpi-dev), then mpirun -np N "
                "build/mpi/char_lm --mpi ...\n");
        return -1;
    }
    return lm_dist_check_launcher(mpi);
}
static inline int lm_dist_end(lm_dist *d, int status) { (void)d; return status; }
static inline int lm_dist_agree(lm_dist *d, bool failed) { (void)d; return failed ? -1 : 0; }
static inline int lm_dist_setup(lm_dist *d, int batch, int seq, const tg_recurrent *rnn)
{
    (void)rnn;
    d->local_batch = batch;
    d->seq = seq;
    return 0;
}
static inline int64_t lm_dist_rows(lm_dist *d, const int32_t *inputs, const int32_t *targets,
                                   const int32_t **my_inputs, const int32_t **my_targets)
{
    *my_inputs = inputs;
    *my_targets = targets;
    return d->local_batch;
}
static inline const tg_state *lm_dist_states(lm_dist *d, const tg_recurrent *rnn,
                                             const tg_state *carried)
{
    (void)d, (void)rnn;
    return carried;
}
static inline int lm_dist_reduce(lm_dist *d, const tg_params *params, bool failed,
                                 tg_status *tape, double *loss)
{
    (void)d, (void)params, (void)tape, (void)loss;
    return failed ? -1 : 0;
}
static inline int lm_dist_keep_states(lm_dist *d, const tg_recurrent *rnn, tg_state *carried,
                                      const tg_state *final)
{
    (void)d;
    return tg_states_keep(rnn, carried, final) == TG_OK ? 0 : -1;
}
static inline int lm_dist_broadcast(lm_dist *d, const tg_params *state, tg_rng *rng,
                                    const lm_dist_fact *facts, int n_facts)
{
    (void)d, (void)state, (void)rng, (void)facts, (void)n_facts;
    return 0;
}
static inline int lm_dist_check_same(lm_dist *d, const tg_params *set)
{
    (void)d, (void)set;
    return 0;
}

#endif
#endif
