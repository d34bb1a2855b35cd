#define _GNU_SOURCE
#include "vfio_fake.h"
#include "../../CVFIO/shim.h"
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static char device_path[PATH_MAX];
static uint8_t *stream;
static uint32_t stream_length;
static uint64_t migration_flags;
static uint32_t state = VFIO_DEVICE_STATE_RUNNING;
static int data_fd = -1;
static int resuming_fd = -1;
static struct mdevsim_fake_vfio_call last;
static uint64_t calls;

int mdevsim_fake_vfio_add(const char *path, const uint8_t *bytes, uint32_t length, uint64_t flags) {
    pthread_mutex_lock(&lock);
    if (!realpath(path, device_path)) snprintf(device_path, sizeof device_path, "%s", path);
    free(stream);
    stream = malloc(length ? length : 1);
    memcpy(stream, bytes, length);
    stream_length = length;
    migration_flags = flags;
    state = VFIO_DEVICE_STATE_RUNNING;
    data_fd = -1;
    calls = 0;
    pthread_mutex_unlock(&lock);
    return 0;
}

void mdevsim_fake_vfio_clear(void) {
    pthread_mutex_lock(&lock);
    device_path[0] = 0;
    pthread_mutex_unlock(&lock);
}

struct mdevsim_fake_vfio_call mdevsim_fake_vfio_last(void) { return last; }
uint64_t mdevsim_fake_vfio_calls(void) { return calls; }
uint32_t mdevsim_fake_vfio_state(void) { return state; }

uint32_t mdevsim_fake_vfio_resumed(uint8_t *out, uint32_t capacity) {
    if (resuming_fd < 0) return 0;
    ssize_t n = pread(resuming_fd, out, capacity, 0);
    return n > 0 ? (uint32_t)n : 0;
}

static int is_device(int fd) {
    if (!device_path[0]) return 0;
    char link[64], target[PATH_MAX];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, target, sizeof target - 1);
    if (n <= 0) return 0;
    target[n] = 0;
    return strcmp(target, device_path) == 0;
}

// A data_fd: a memory file holding the saving stream, or taking the resumed one.
static int new_data_fd(int saving) {
    int fd = memfd_create("mdevsim-fake-data_fd", MFD_CLOEXEC);
    if (fd < 0) return -1;
    if (saving && stream_length) {
        if (write(fd, stream, stream_length) != (ssize_t)stream_length) { close(fd); return -1; }
        lseek(fd, 0, SEEK_SET);
    }
    return fd;
}

static int fail(int e) { errno = e; return -1; }

// VFIO_DEVICE_FEATURE as vfio_ioctl_device_feature() checks it: argsz covers the
// header, exactly one of GET, SET, PROBE, and the payload the feature needs.
static int device_feature(struct vfio_device_feature *f) {
    last.argsz = f->argsz;
    last.flags = f->flags;
    uint32_t op = f->flags & (VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_PROBE);
    uint32_t feature = f->flags & VFIO_DEVICE_FEATURE_MASK;
    if (f->argsz < sizeof *f) return fail(EINVAL);
    if (op != VFIO_DEVICE_FEATURE_GET && op != VFIO_DEVICE_FEATURE_SET && op != VFIO_DEVICE_FEATURE_PROBE) return fail(EINVAL);
    size_t payload = f->argsz - sizeof *f;
    switch (feature) {
    case VFIO_DEVICE_FEATURE_MIGRATION: {
        if (op != VFIO_DEVICE_FEATURE_GET) return fail(EINVAL);
        if (payload < sizeof(struct vfio_device_feature_migration)) return fail(EINVAL);
        struct vfio_device_feature_migration *m = (void *)f->data;
        m->flags = migration_flags;
        return 0;
    }
    case VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE: {
        if (payload < sizeof(struct vfio_device_feature_mig_state)) return fail(EINVAL);
        struct vfio_device_feature_mig_state *s = (void *)f->data;
        if (op == VFIO_DEVICE_FEATURE_GET) { s->device_state = state; return 0; }
        if (op != VFIO_DEVICE_FEATURE_SET) return fail(EINVAL);
        if (s->device_state > MDEVSIM_VFIO_DEVICE_STATE_PRE_COPY_P2P || s->device_state == VFIO_DEVICE_STATE_ERROR) return fail(EINVAL);
        uint32_t to = s->device_state;
        int saving = to == VFIO_DEVICE_STATE_STOP_COPY || to == MDEVSIM_VFIO_DEVICE_STATE_PRE_COPY || to == MDEVSIM_VFIO_DEVICE_STATE_PRE_COPY_P2P;
        int was_saving = state == VFIO_DEVICE_STATE_STOP_COPY || state == MDEVSIM_VFIO_DEVICE_STATE_PRE_COPY || state == MDEVSIM_VFIO_DEVICE_STATE_PRE_COPY_P2P;
        s->data_fd = -1;
        if ((saving && !was_saving) || (to == VFIO_DEVICE_STATE_RESUMING && state != to)) {
            // A new session: a new data_fd for the caller (it owns it); the fake keeps a copy.
            int fd = new_data_fd(saving);
            if (fd < 0) return fail(ENOMEM);
            data_fd = fd;
            if (!saving) resuming_fd = dup(fd);
            s->data_fd = fd;
        }
        state = to;
        return 0;
    }
    case VFIO_DEVICE_FEATURE_MIG_DATA_SIZE: {
        if (op != VFIO_DEVICE_FEATURE_GET) return fail(EINVAL);
        if (payload < sizeof(uint64_t)) return fail(EINVAL);
        *(uint64_t *)f->data = stream_length;
        return 0;
    }
    default:
        return fail(ENOTTY);
    }
}

int ioctl(int fd, unsigned long request, ...) {
    va_list ap;
    va_start(ap, request);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    pthread_mutex_lock(&lock);
    int ours = (fd == data_fd && fd >= 0 && request == VFIO_MIG_GET_PRECOPY_INFO) || is_device(fd);
    if (!ours) {
        pthread_mutex_unlock(&lock);
        return (int)syscall(SYS_ioctl, fd, request, arg);
    }
    calls++;
    last.request = request;
    last.argsz = 0;
    last.flags = 0;
    int rc;
    if (request == VFIO_DEVICE_FEATURE) {
        rc = device_feature(arg);
    } else if (request == VFIO_DEVICE_RESET) {
        state = VFIO_DEVICE_STATE_RUNNING;
        data_fd = -1;
        rc = 0;
    } else if (request == VFIO_MIG_GET_PRECOPY_INFO) {
        struct vfio_precopy_info *info = arg;
        last.argsz = info->argsz;
        if (info->argsz < sizeof *info) {
            rc = fail(EINVAL);
        } else if (state != MDEVSIM_VFIO_DEVICE_STATE_PRE_COPY && state != MDEVSIM_VFIO_DEVICE_STATE_PRE_COPY_P2P) {
            rc = fail(EINVAL);
        } else {
            off_t at = lseek(fd, 0, SEEK_CUR);
            info->initial_bytes = at < (off_t)stream_length ? stream_length - (uint64_t)at : 0;
            info->dirty_bytes = 0;
            rc = 0;
        }
    } else {
        rc = fail(ENOTTY);
    }
    pthread_mutex_unlock(&lock);
    return rc;
}
