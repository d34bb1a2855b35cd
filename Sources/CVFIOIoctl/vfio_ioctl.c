#include "vfio_ioctl.h"
#include "../../CVFIO/shim.h"
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/ioctl.h>

// VFIO_DEVICE_FEATURE with a payload of `size` bytes after the 8-byte header.
static int feature(int fd, uint32_t flags, void *payload, size_t size) {
    unsigned char buffer[sizeof(struct vfio_device_feature) + 16];
    struct vfio_device_feature *f = (struct vfio_device_feature *)buffer;
    memset(buffer, 0, sizeof buffer);
    f->argsz = (uint32_t)(sizeof(struct vfio_device_feature) + size);
    f->flags = flags;
    memcpy(f->data, payload, size);
    if (ioctl(fd, VFIO_DEVICE_FEATURE, f) != 0) return -errno;
    memcpy(payload, f->data, size);
    return 0;
}

int mdevsim_vfio_migration_flags(int fd, uint64_t *flags) {
    struct vfio_device_feature_migration m = {0};
    int rc = feature(fd, VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIGRATION, &m, sizeof m);
    if (rc == 0) *flags = m.flags;
    return rc;
}

int mdevsim_vfio_get_state(int fd, uint32_t *state) {
    struct vfio_device_feature_mig_state s = {0};
    int rc = feature(fd, VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, &s, sizeof s);
    if (rc == 0) *state = s.device_state;
    return rc;
}

int mdevsim_vfio_set_state(int fd, uint32_t state, int32_t *data_fd) {
    struct vfio_device_feature_mig_state s = { .device_state = state, .data_fd = -1 };
    int rc = feature(fd, VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, &s, sizeof s);
    *data_fd = s.data_fd;
    return rc;
}

int mdevsim_vfio_stop_copy_size(int fd, uint64_t *bytes) {
    uint64_t length = 0;
    int rc = feature(fd, VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIG_DATA_SIZE, &length, sizeof length);
    if (rc == 0) *bytes = length;
    return rc;
}

int mdevsim_vfio_precopy_info(int data_fd, uint64_t *initial_bytes, uint64_t *dirty_bytes) {
    struct vfio_precopy_info info = { .argsz = sizeof info };
    if (ioctl(data_fd, VFIO_MIG_GET_PRECOPY_INFO, &info) != 0) return -errno;
    *initial_bytes = info.initial_bytes;
    *dirty_bytes = info.dirty_bytes;
    return 0;
}

int mdevsim_vfio_reset(int fd) { return ioctl(fd, VFIO_DEVICE_RESET) == 0 ? 0 : -errno; }

unsigned long mdevsim_vfio_ioctl_device_feature(void) { return VFIO_DEVICE_FEATURE; }
unsigned long mdevsim_vfio_ioctl_device_reset(void) { return VFIO_DEVICE_RESET; }
unsigned long mdevsim_vfio_ioctl_precopy_info(void) { return VFIO_MIG_GET_PRECOPY_INFO; }
size_t mdevsim_vfio_sizeof_feature_header(void) { return sizeof(struct vfio_device_feature); }
size_t mdevsim_vfio_sizeof_mig_state(void) { return sizeof(struct vfio_device_feature_mig_state); }
size_t mdevsim_vfio_sizeof_precopy_info(void) { return sizeof(struct vfio_precopy_info); }
size_t mdevsim_vfio_offsetof_precopy_dirty_bytes(void) { return offsetof(struct vfio_precopy_info, dirty_bytes); }
