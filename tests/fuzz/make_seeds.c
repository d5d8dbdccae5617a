/* Writes the seed inputs of the checkpoint, text and cli fuzz targets into
 * tests/fuzz/<target>/ (the .npy seeds are copies of tests/fixtures files).
 * Run once from the repository root when the formats change:
 *     make build/fuzz-seeds && build/fuzz-seeds
 * The layouts of the inputs are described in harness.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tapegrad.h"

/* Write mode byte + the checkpoint file at tmp into path. */
static void checkpoint_seed(const char *path, unsigned char mode, const char *tmp)
{
    FILE *in = fopen(tmp, "rb"), *out = fopen(path, "wb");
    if (!in || !out) {
        fprintf(stderr, "make_seeds: cannot write %s\n", path);
        exit(1);
    }
    fputc(mode, out);
    int c;
    while ((c = fgetc(in)) != EOF)
        fputc(c, out);
    fclose(in);
    fclose(out);
    remove(tmp);
}

static void write_bytes(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, n, f) != n || fclose(f) != 0) {
        fprintf(stderr, "make_seeds: cannot write %s\n", path);
        exit(1);
    }
}

int main(void)
{
    const char *tmp = "build/fuzz-seed.ckpt";
    tg_tensor *W = tg_tensor_arange(TG_F32, 0, 6, 1), *b = tg_tensor_arange(TG_F64, 1, 4, 1);
    tg_tensor W23;
    tg_view_reshape(&W23, W, TG_DIMS(2, 3));
    tg_params params = {0};
    tg_params_add(&params, "W", &W23);
    tg_params_add(&params, "b", b);
    tg_rng rng;
    tg_rng_seed(&rng, 1);
    tg_rng_randn(&rng); /* leave a Gaussian waiting */
    tg_checkpoint_int step = {"step", 42};

    /* mode: bit 0 fix CRCs, 1 generator, 2 tensors, 3 the integer "step" */
    tg_checkpoint_save(tmp, &params, &rng, &step, 1);
    checkpoint_seed("tests/fuzz/checkpoint/seed-all", 0x0f, tmp);
    tg_checkpoint_save(tmp, &params, &rng, &step, 1);
    checkpoint_seed("tests/fuzz/checkpoint/seed-all-unfixed", 0x0e, tmp);
    tg_checkpoint_save(tmp, &params, NULL, &step, 1);
    checkpoint_seed("tests/fuzz/checkpoint/seed-tensors-step", 0x0d, tmp);
    tg_checkpoint_save(tmp, NULL, NULL, &step, 1);
    checkpoint_seed("tests/fuzz/checkpoint/seed-step", 0x09, tmp);
    tg_checkpoint_save(tmp, NULL, NULL, NULL, 0);
    checkpoint_seed("tests/fuzz/checkpoint/seed-empty", 0x01, tmp);

    /* text: m, T (int32), order, seed (3 bytes), position (3 bytes), batches, text */
    static const char *texts[] = {"aardonyx\nabelisaurus\nacanthopholis\naegyptosaurus\n",
                                  "To be, or not to be: that is the question.\n"};
    static const unsigned char heads[][16] = {
        {2, 0, 0, 0, 4, 0, 0, 0, 0, 7, 0, 0, 3, 0, 0, 3},
        {3, 0, 0, 0, 5, 0, 0, 0, 1, 1, 0, 0, 9, 0, 0, 2},
    };
    for (int i = 0; i < 2; i++) {
        unsigned char buf[256];
        size_t n = strlen(texts[i]);
        memcpy(buf, heads[i], 16);
        memcpy(buf + 16, texts[i], n);
        char path[64];
        snprintf(path, sizeof path, "tests/fuzz/text/seed-%d", i);
        write_bytes(path, buf, 16 + n);
    }

    /* cli: arguments separated by NUL bytes */
    static const char cli0[] = "--cell\0gru\0--hidden\0128\0--lr\0" "0.01\0my.txt";
    static const char cli1[] = "--sample\0--load\0x.ckpt\0--prompt\0KING:\0--temperature\0" "0.5";
    static const char cli2[] = "--dinos\0--steps\0" "100\0--on-nonfinite\0restore\0--anomaly";
    write_bytes("tests/fuzz/cli/seed-0", cli0, sizeof cli0 - 1);
    write_bytes("tests/fuzz/cli/seed-1", cli1, sizeof cli1 - 1);
    write_bytes("tests/fuzz/cli/seed-2", cli2, sizeof cli2 - 1);

    tg_params_clear(&params);
    tg_tensor_free(W);
    tg_tensor_free(b);
    printf("make_seeds: wrote the seeds into tests/fuzz/\n");
    return 0;
}
