#include "fuzz_driver.h"

extern int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *, size_t)) __attribute__((weak));

int mdevsim_fuzz_have_libfuzzer(void) { return LLVMFuzzerRunDriver != 0; }

int mdevsim_fuzz_run_driver(int *argc, char ***argv, mdevsim_fuzz_callback callback) {
    if (!LLVMFuzzerRunDriver) return -1;
    return LLVMFuzzerRunDriver(argc, argv, callback);
}
