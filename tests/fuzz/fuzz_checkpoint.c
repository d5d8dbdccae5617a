/* libFuzzer target: see harness.h (fuzz_checkpoint_one). Built and run by make fuzz. */
#include "harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *broken = fuzz_checkpoint_one(data, size);
    if (broken) {
        fprintf(stderr, "fuzz_checkpoint: %s\n", broken);
        abort();
    }
    return 0;
}
