/* Benchmark client for register access: one open, then pread of 8 bytes or
 * pwrite of 4 bytes at OFFSET in a loop for SECONDS, as a VMM touches a
 * region; prints "ops_per_sec p50_us p99_us".
 *
 *   reg_client FILE OFFSET pread8|pwrite4 SECONDS [VALUE]
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }
static int cmp(const void *a, const void *b) { float x = *(const float *)a, y = *(const float *)b; return (x > y) - (x < y); }

int main(int argc, char **argv) {
    if (argc < 5) { fprintf(stderr, "usage: %s FILE OFFSET pread8|pwrite4 SECONDS [VALUE]\n", argv[0]); return 2; }
    off_t off = strtoll(argv[2], NULL, 0);
    int write_mode = strcmp(argv[3], "pwrite4") == 0;
    double seconds = atof(argv[4]);
    uint32_t value = argc > 5 ? (uint32_t)strtoul(argv[5], NULL, 0) : 0;
    int fd = open(argv[1], O_RDWR);
    if (fd < 0) { perror(argv[1]); return 1; }
    size_t cap = 1 << 22, n = 0;
    float *lat = malloc(cap * sizeof *lat);
    uint64_t word = 0;
    double start = now(), end = start + seconds, t = start;
    while (t < end && n < cap) {
        double t0 = t;
        ssize_t r = write_mode ? pwrite(fd, &value, 4, off) : pread(fd, &word, 8, off);
        if (r != (write_mode ? 4 : 8)) { perror(write_mode ? "pwrite" : "pread"); return 1; }
        t = now();
        lat[n++] = (float)((t - t0) * 1e6);
    }
    close(fd);
    qsort(lat, n, sizeof *lat, cmp);
    printf("%.0f %.2f %.2f\n", n / (t - start), lat[n / 2], lat[n * 99 / 100]);
    return 0;
}
