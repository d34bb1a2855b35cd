/* Benchmark client for register access: one open, then pread of 8 bytes or
 * pwrite of 4 bytes at OFFSET in a loop for SECONDS, as a VMM touches a
 * region; prints "ops_per_sec p50_us p99_us".
 *
 *   reg_client FILE OFFSET pread8|pwrite4 SECONDS [VALUE]
 *
 * FILE vfio:GROUP:NAME:INDEX opens a VFIO device as QEMU does (container,
 * group, VFIO_GROUP_GET_DEVICE_FD) and accesses region INDEX at INDEX << 40
 * (under `mdevsim exec --vfio`, the emulated device).
 */
#include <linux/vfio.h>
#include <sys/ioctl.h>
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
    int fd;
    if (strncmp(argv[1], "vfio:", 5) == 0) {
        char group[64], name[64];
        int index = 0;
        if (sscanf(argv[1] + 5, "%63[^:]:%63[^:]:%d", group, name, &index) != 3) { fprintf(stderr, "vfio:GROUP:NAME:INDEX\n"); return 2; }
        char path[96];
        snprintf(path, sizeof path, "/dev/vfio/%s", group);
        int container = open("/dev/vfio/vfio", O_RDWR), g = open(path, O_RDWR);
        if (container < 0 || g < 0) { perror("open /dev/vfio"); return 1; }
        if (ioctl(g, VFIO_GROUP_SET_CONTAINER, &container) || ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU)) { perror("vfio setup"); return 1; }
        fd = ioctl(g, VFIO_GROUP_GET_DEVICE_FD, name);
        if (fd < 0) { perror("VFIO_GROUP_GET_DEVICE_FD"); return 1; }
        off += (off_t)index << 40;
    } else {
        fd = open(argv[1], O_RDWR);
        if (fd < 0) { perror(argv[1]); return 1; }
    }
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
