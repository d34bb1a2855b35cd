#ifndef MDEVSIM_CRC32C_HW_H
#define MDEVSIM_CRC32C_HW_H
#include <stddef.h>
#include <stdint.h>

/// Whether this CPU has the SSE4.2 crc32 instruction.
int mdevsim_crc32c_hw_available(void);

/// CRC-32C (Castagnoli) with the crc32 instruction; `crc` is the running
/// value before the final inversion (start with ~0, invert the result).
uint32_t mdevsim_crc32c_hw(uint32_t crc, const void *data, size_t length);
#endif
