#ifndef MDEVSIM_CLINUX_H
#define MDEVSIM_CLINUX_H
// Linux calls Swift cannot make or name (GNU-only, variadic, or struct-heavy):
// seccomp user notification (filter, RECV/SEND/ADDFD), SCM_RIGHTS, pidfds,
// process_vm_readv/writev and memfds. All return -errno on failure.
#include <stdint.h>
#include <stddef.h>
#include <sys/types.h>

/// One notification, flattened: `pid` is the calling thread's id.
struct mdevsim_notif {
    uint64_t id;
    uint32_t pid;
    int32_t nr;
    uint64_t args[6];
};

/// Syscall numbers the emulation sees (x86_64 and aarch64 both from <sys/syscall.h>; -1 when absent).
enum mdevsim_sys {
    MDEVSIM_SYS_OPENAT, MDEVSIM_SYS_OPEN, MDEVSIM_SYS_IOCTL, MDEVSIM_SYS_PREAD, MDEVSIM_SYS_PWRITE,
    MDEVSIM_SYS_READ, MDEVSIM_SYS_WRITE, MDEVSIM_SYS_READV, MDEVSIM_SYS_WRITEV, MDEVSIM_SYS_PREADV,
    MDEVSIM_SYS_PWRITEV, MDEVSIM_SYS_PREADV2, MDEVSIM_SYS_PWRITEV2, MDEVSIM_SYS_MMAP, MDEVSIM_SYS_CLOSE,
    MDEVSIM_SYS_FCNTL, MDEVSIM_SYS_DUP, MDEVSIM_SYS_DUP2, MDEVSIM_SYS_DUP3, MDEVSIM_SYS_LSEEK,
    MDEVSIM_SYS_COUNT
};
long mdevsim_sys_number(enum mdevsim_sys which);

/// Installs, on the calling thread, a filter that notifies open/openat always
/// and the fd-taking calls above when their fd is in [lo, hi) (dup2/dup3 also
/// when the new fd is). Sets no_new_privs unless the caller has CAP_SYS_ADMIN.
/// Returns the listener fd.
int mdevsim_seccomp_install(int lo, int hi);

int mdevsim_notif_recv(int listener, struct mdevsim_notif *out);
int mdevsim_notif_send(int listener, uint64_t id, int64_t val, int32_t error, int cont);
/// Puts `srcfd` into the target as `newfd` (O_CLOEXEC); with `send` it is also
/// the notified call's return value. Returns the target's fd number.
int mdevsim_notif_addfd(int listener, uint64_t id, int srcfd, int newfd, int send);
int mdevsim_notif_id_valid(int listener, uint64_t id);
/// Waits until a notification is ready (1), the filter's last user is gone (0), or `timeout_ms` passes (2).
int mdevsim_notif_wait(int listener, int timeout_ms);

int mdevsim_send_fd(int sock, int fd, const void *data, size_t len);
/// Receives up to `len` bytes and at most one fd (-1 when none came). Returns the byte count.
ssize_t mdevsim_recv_fd(int sock, int *fd, void *data, size_t len);
int mdevsim_peer_uid(int sock, uint32_t *uid, int32_t *pid);

int mdevsim_pidfd_open(pid_t pid);
int mdevsim_pidfd_getfd(int pidfd, int fd);
ssize_t mdevsim_mem_read(pid_t pid, uint64_t addr, void *buf, size_t len);
ssize_t mdevsim_mem_write(pid_t pid, uint64_t addr, const void *buf, size_t len);
int mdevsim_memfd(const char *name, uint64_t size);
int mdevsim_eventfd_signal(int fd);

/// A NETLINK_KOBJECT_UEVENT socket created inside the network namespace `netns_fd`
/// (the calling thread returns to its own namespace before this returns).
int mdevsim_uevent_socket(int netns_fd);
/// setns(2) (GNU-only in glibc's headers): joins the namespace `fd` of type `nstype` (CLONE_NEW*).
int mdevsim_setns(int fd, int nstype);
/// 1 when `fd` is a namespace file (on nsfs), 0 when not, -errno on failure.
int mdevsim_is_namespace(int fd);
/// Sends one message to the netlink multicast group `group` (2: udev's, where libudev listens).
int mdevsim_uevent_send(int sock, unsigned group, const void *data, size_t len);
#endif
