/* Benchmark client: open(O_RDONLY) + read(4096) + close of one file, in a loop
 * for SECONDS; prints "ops_per_sec p50_us p99_us". */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }
static int cmp(const void *a, const void *b) { float x = *(const float *)a, y = *(const float *)b; return (x > y) - (x < y); }

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: %s FILE SECONDS\n", argv[0]); return 2; }
    double seconds = atof(argv[2]);
    size_t cap = 1 << 22, n = 0;
    float *lat = malloc(cap * sizeof *lat);
    char buf[4096];
    double start = now(), end = start + seconds, t = start;
    while (t < end && n < cap) {
        double t0 = t;
        int fd = open(argv[1], O_RDONLY);
        if (fd < 0) { perror(argv[1]); return 1; }
        if (read(fd, buf, sizeof buf) <= 0) { perror("read"); return 1; }
        close(fd);
        t = now();
        lat[n++] = (float)((t - t0) * 1e6);
    }
    qsort(lat, n, sizeof *lat, cmp);
    printf("%.0f %.1f %.1f\n", n / (t - start), lat[n / 2], lat[n * 99 / 100]);
    return 0;
}
