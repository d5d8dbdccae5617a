/* libFuzzer target: see harness.h (fuzz_npy_one). Built and run by make fuzz. */
#include "harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *broken = fuzz_npy_one(data, size);
    if (broken) {
        fprintf(stderr, "fuzz_npy: %s\n", broken);
        abort();
    }
    return 0;
}
