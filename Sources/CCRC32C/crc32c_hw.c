#include "crc32c_hw.h"
#include <pthread.h>
#include <string.h>

#if defined(__x86_64__)
int mdevsim_crc32c_hw_available(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("sse4.2");
}

/* One stream: the crc32 instruction has a latency of 3 cycles and a throughput of
 * one per cycle, so a single dependent chain uses a third of it. */
__attribute__((target("sse4.2")))
static uint64_t crc_stream(uint64_t c, const unsigned char *p, size_t length) {
    while (length >= 8) {
        uint64_t word;
        memcpy(&word, p, 8);
        c = __builtin_ia32_crc32di(c, word);
        p += 8;
        length -= 8;
    }
    uint32_t c32 = (uint32_t)c;
    while (length > 0) {
        c32 = __builtin_ia32_crc32qi(c32, *p++);
        length--;
    }
    return c32;
}

/* Three streams over three consecutive lanes of LANE bytes, joined after each block:
 * the register update is linear, so crc(A B) = shift(crc(A)) ^ crc_from_0(B), where
 * shift(x) is x carried through LANE zero bytes, a linear map kept as four byte tables. */
enum { LANE = 2048 };
static uint32_t shift_table[4][256];
static pthread_once_t tables_once = PTHREAD_ONCE_INIT;

static void make_tables(void) {
    static const unsigned char zeros[LANE];
    for (int k = 0; k < 4; k++)
        for (int b = 0; b < 256; b++)
            shift_table[k][b] = (uint32_t)crc_stream((uint64_t)((uint32_t)b << (8 * k)), zeros, LANE);
}

static inline uint32_t shift(uint32_t c) {
    return shift_table[0][c & 0xff] ^ shift_table[1][(c >> 8) & 0xff] ^ shift_table[2][(c >> 16) & 0xff] ^ shift_table[3][c >> 24];
}

__attribute__((target("sse4.2")))
uint32_t mdevsim_crc32c_hw(uint32_t crc, const void *data, size_t length) {
    const unsigned char *p = data;
    if (length >= 3 * LANE) {
        pthread_once(&tables_once, make_tables);
        while (length >= 3 * LANE) {
            uint64_t a = crc, b = 0, c = 0;
            for (size_t i = 0; i < LANE; i += 8) {
                uint64_t wa, wb, wc;
                memcpy(&wa, p + i, 8);
                memcpy(&wb, p + LANE + i, 8);
                memcpy(&wc, p + 2 * LANE + i, 8);
                a = __builtin_ia32_crc32di(a, wa);
                b = __builtin_ia32_crc32di(b, wb);
                c = __builtin_ia32_crc32di(c, wc);
            }
            crc = shift(shift((uint32_t)a) ^ (uint32_t)b) ^ (uint32_t)c;
            p += 3 * LANE;
            length -= 3 * LANE;
        }
    }
    return (uint32_t)crc_stream(crc, p, length);
}
#else
int mdevsim_crc32c_hw_available(void) { return 0; }
uint32_t mdevsim_crc32c_hw(uint32_t crc, const void *data, size_t length) { (void)data; (void)length; return crc; }
#endif
