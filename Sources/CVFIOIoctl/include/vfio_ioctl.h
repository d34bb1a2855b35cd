#ifndef MDEVSIM_VFIO_IOCTL_H
#define MDEVSIM_VFIO_IOCTL_H
#include <stddef.h>
#include <stdint.h>

// The VFIO v2 migration ioctls on a real device fd (vfio cdev or group-obtained
// device fd). Each returns 0 or -errno. ioctl(2) is variadic, which Swift cannot
// call, hence this C layer.
int mdevsim_vfio_migration_flags(int device_fd, uint64_t *flags);
int mdevsim_vfio_get_state(int device_fd, uint32_t *state);
int mdevsim_vfio_set_state(int device_fd, uint32_t state, int32_t *data_fd);
int mdevsim_vfio_stop_copy_size(int device_fd, uint64_t *bytes);
int mdevsim_vfio_precopy_info(int data_fd, uint64_t *initial_bytes, uint64_t *dirty_bytes);
int mdevsim_vfio_reset(int device_fd);

// The request numbers and layouts as the kernel header defines them, for tests.
unsigned long mdevsim_vfio_ioctl_device_feature(void);
unsigned long mdevsim_vfio_ioctl_device_reset(void);
unsigned long mdevsim_vfio_ioctl_precopy_info(void);
size_t mdevsim_vfio_sizeof_feature_header(void);
size_t mdevsim_vfio_sizeof_mig_state(void);
size_t mdevsim_vfio_sizeof_precopy_info(void);
size_t mdevsim_vfio_offsetof_precopy_dirty_bytes(void);
#endif
