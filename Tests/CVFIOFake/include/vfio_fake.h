#ifndef MDEVSIM_VFIO_FAKE_H
#define MDEVSIM_VFIO_FAKE_H
#include <stdint.h>

// A fake VFIO device at the syscall boundary, for testing the C ioctl layer
// (Sources/CVFIOIoctl) itself: this target defines ioctl(2), so the process's
// calls reach it first. Calls on a registered path's fds (and on the data fds
// it hands out) are answered as the kernel's vfio-pci migration driver would,
// checking argsz and flags and recording what arrived; every other call goes
// on to the kernel unchanged.

// Registers `path` (opened with open(2) as usual) as a fake device whose saving
// stream is `stream` (copied). Returns 0.
int mdevsim_fake_vfio_add(const char *path, const uint8_t *stream, uint32_t length, uint64_t flags);
void mdevsim_fake_vfio_clear(void);

struct mdevsim_fake_vfio_call {
    unsigned long request;
    uint32_t argsz;
    uint32_t flags;
};
// The last VFIO ioctl the fake answered, and how many it answered.
struct mdevsim_fake_vfio_call mdevsim_fake_vfio_last(void);
uint64_t mdevsim_fake_vfio_calls(void);
uint32_t mdevsim_fake_vfio_state(void);
// Bytes written to the data fd of the last RESUMING session (copied into `out`).
uint32_t mdevsim_fake_vfio_resumed(uint8_t *out, uint32_t capacity);
#endif
