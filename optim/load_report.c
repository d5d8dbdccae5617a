/* The lists of a non-strict load (tg_load_report, checkpoint.h), shared by
 * the checkpoint and .npz loaders. */
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "internal.h"

tg_status tg_load_report_note(tg_load_report *report, bool missing, const char *name,
                              size_t len, const char *who)
{
    char ***names = missing ? &report->missing : &report->unexpected;
    int *n = missing ? &report->n_missing : &report->n_unexpected;
    char **grown = realloc(*names, ((size_t)*n + 1) * sizeof *grown);
    char *copy = malloc(len + 1);
    if (grown)
        *names = grown;
    if (!grown || !copy) {
        free(copy);
        return tg_fail(TG_ERR_NOMEM, "%s: out of memory listing the names", who);
    }
    memcpy(copy, name, len);
    copy[len] = '\0';
    grown[(*n)++] = copy;
    return TG_OK;
}

void tg_load_report_free(tg_load_report *report)
{
    if (!report)
        return;
    for (int i = 0; i < report->n_missing; i++)
        free(report->missing[i]);
    for (int i = 0; i < report->n_unexpected; i++)
        free(report->unexpected[i]);
    free(report->missing);
    free(report->unexpected);
    memset(report, 0, sizeof *report);
}
