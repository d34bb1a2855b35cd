#ifndef MDEVSIM_FUZZ_DRIVER_H
#define MDEVSIM_FUZZ_DRIVER_H
#include <stddef.h>
#include <stdint.h>

typedef int (*mdevsim_fuzz_callback)(const uint8_t *data, size_t size);

// Runs libFuzzer's driver when the binary is linked with it
// (swift build -Xswiftc -sanitize=fuzzer), else returns -1: libFuzzer's
// LLVMFuzzerRunDriver is a weak reference here, so the same executable
// links in an ordinary build and then only replays inputs.
int mdevsim_fuzz_run_driver(int *argc, char ***argv, mdevsim_fuzz_callback callback);
int mdevsim_fuzz_have_libfuzzer(void);
#endif
