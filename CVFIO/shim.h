#ifndef MDEVSIM_CVFIO_SHIM_H
#define MDEVSIM_CVFIO_SHIM_H
// VFIO constants come from the kernel's own uAPI header (linux-libc-dev).
#include <linux/vfio.h>

// The only place mdevsim defines VFIO constants itself: what Debian 12's 6.1
// header predates (added in Linux 6.2 by "vfio: Extend the device migration
// protocol with PRE_COPY" and "vfio: Add an option to get migration data size").
#ifndef VFIO_MIGRATION_PRE_COPY
#define VFIO_MIGRATION_PRE_COPY (1 << 2)
#endif
#define MDEVSIM_VFIO_DEVICE_STATE_PRE_COPY 6
#define MDEVSIM_VFIO_DEVICE_STATE_PRE_COPY_P2P 7
#ifndef VFIO_DEVICE_FEATURE_MIG_DATA_SIZE
#define VFIO_DEVICE_FEATURE_MIG_DATA_SIZE 9
#endif
#ifndef VFIO_MIG_GET_PRECOPY_INFO
struct vfio_precopy_info {
    __u32 argsz;
    __u32 flags;
    __aligned_u64 initial_bytes;
    __aligned_u64 dirty_bytes;
};
#define VFIO_MIG_GET_PRECOPY_INFO _IO(VFIO_TYPE, VFIO_BASE + 21)
#endif
#endif
