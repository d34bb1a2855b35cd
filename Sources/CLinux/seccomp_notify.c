#define _GNU_SOURCE
#include "clinux.h"
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>

#if defined(__x86_64__)
#define MDEVSIM_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define MDEVSIM_AUDIT_ARCH AUDIT_ARCH_AARCH64
#else
#error "seccomp emulation: unsupported architecture"
#endif

#ifndef __NR_open
#define __NR_open -1
#endif
#ifndef __NR_dup2
#define __NR_dup2 -1
#endif

static const long numbers[MDEVSIM_SYS_COUNT] = {
    [MDEVSIM_SYS_OPENAT] = __NR_openat, [MDEVSIM_SYS_OPEN] = __NR_open, [MDEVSIM_SYS_IOCTL] = __NR_ioctl,
    [MDEVSIM_SYS_PREAD] = __NR_pread64, [MDEVSIM_SYS_PWRITE] = __NR_pwrite64, [MDEVSIM_SYS_READ] = __NR_read,
    [MDEVSIM_SYS_WRITE] = __NR_write, [MDEVSIM_SYS_READV] = __NR_readv, [MDEVSIM_SYS_WRITEV] = __NR_writev,
    [MDEVSIM_SYS_PREADV] = __NR_preadv, [MDEVSIM_SYS_PWRITEV] = __NR_pwritev, [MDEVSIM_SYS_PREADV2] = __NR_preadv2,
    [MDEVSIM_SYS_PWRITEV2] = __NR_pwritev2, [MDEVSIM_SYS_MMAP] = __NR_mmap, [MDEVSIM_SYS_CLOSE] = __NR_close,
    [MDEVSIM_SYS_FCNTL] = __NR_fcntl, [MDEVSIM_SYS_DUP] = __NR_dup, [MDEVSIM_SYS_DUP2] = __NR_dup2,
    [MDEVSIM_SYS_DUP3] = __NR_dup3, [MDEVSIM_SYS_LSEEK] = __NR_lseek,
};

long mdevsim_sys_number(enum mdevsim_sys which) { return which < MDEVSIM_SYS_COUNT ? numbers[which] : -1; }

#define ARG_LO(i) (offsetof(struct seccomp_data, args) + 8 * (i))

int mdevsim_seccomp_install(int lo, int hi) {
    struct sock_filter prog[256];
    int n = 0;
#define PUT(x) prog[n++] = (struct sock_filter)x
    PUT(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)));
    PUT(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, MDEVSIM_AUDIT_ARCH, 1, 0));
    PUT(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
    PUT(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)));
    // Paths: always (the supervisor continues everything but /dev/vfio).
    const long always[] = {__NR_openat, __NR_open};
    for (unsigned i = 0; i < sizeof always / sizeof always[0]; i++) {
        if (always[i] < 0) continue;
        PUT(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)always[i], 0, 1));
        PUT(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF));
    }
    // fd-taking calls: notify when the fd (low 32 bits of the argument) is in [lo, hi).
    struct { long nr; int arg; } fdcalls[] = {
        {__NR_ioctl, 0}, {__NR_pread64, 0}, {__NR_pwrite64, 0}, {__NR_read, 0}, {__NR_write, 0},
        {__NR_readv, 0}, {__NR_writev, 0}, {__NR_preadv, 0}, {__NR_pwritev, 0}, {__NR_preadv2, 0},
        {__NR_pwritev2, 0}, {__NR_mmap, 4}, {__NR_close, 0}, {__NR_fcntl, 0}, {__NR_dup, 0},
        {__NR_dup2, 0}, {__NR_dup2, 1}, {__NR_dup3, 0}, {__NR_dup3, 1}, {__NR_lseek, 0},
    };
    for (unsigned i = 0; i < sizeof fdcalls / sizeof fdcalls[0]; i++) {
        if (fdcalls[i].nr < 0) continue;
        // A block of 6: not this call, go to the next block; else load the fd and
        // notify if lo <= fd < hi, otherwise reload nr and fall into the next block.
        PUT(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)fdcalls[i].nr, 0, 5));
        PUT(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG_LO(fdcalls[i].arg)));
        PUT(BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, (uint32_t)lo, 0, 2));
        PUT(BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, (uint32_t)hi, 1, 0));
        PUT(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF));
        PUT(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)));
    }
    PUT(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
#undef PUT
    struct sock_fprog fprog = {.len = (unsigned short)n, .filter = prog};
    // Root may install a filter without no_new_privs, so setuid programs keep working under it.
    long fd = syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &fprog);
    if (fd < 0 && errno == EACCES) {
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return -errno;
        fd = syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &fprog);
    }
    return fd < 0 ? -errno : (int)fd;
}

int mdevsim_notif_recv(int listener, struct mdevsim_notif *out) {
    struct seccomp_notif n;
    memset(&n, 0, sizeof n);
    if (ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, &n) != 0) return -errno;
    out->id = n.id;
    out->pid = n.pid;
    out->nr = n.data.nr;
    for (int i = 0; i < 6; i++) out->args[i] = n.data.args[i];
    return 0;
}

int mdevsim_notif_send(int listener, uint64_t id, int64_t val, int32_t error, int cont) {
    struct seccomp_notif_resp r = {.id = id, .val = val, .error = error, .flags = cont ? SECCOMP_USER_NOTIF_FLAG_CONTINUE : 0};
    if (cont) r.val = 0, r.error = 0;
    return ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, &r) == 0 ? 0 : -errno;
}

int mdevsim_notif_addfd(int listener, uint64_t id, int srcfd, int newfd, int send) {
    struct seccomp_notif_addfd a = {
        .id = id, .flags = SECCOMP_ADDFD_FLAG_SETFD | (send ? SECCOMP_ADDFD_FLAG_SEND : 0),
        .srcfd = (uint32_t)srcfd, .newfd = (uint32_t)newfd, .newfd_flags = O_CLOEXEC,
    };
    int r = ioctl(listener, SECCOMP_IOCTL_NOTIF_ADDFD, &a);
    return r < 0 ? -errno : r;
}

int mdevsim_notif_id_valid(int listener, uint64_t id) {
    return ioctl(listener, SECCOMP_IOCTL_NOTIF_ID_VALID, &id) == 0 ? 0 : -errno;
}

int mdevsim_notif_wait(int listener, int timeout_ms) {
    struct pollfd p = {.fd = listener, .events = POLLIN};
    for (;;) {
        int r = poll(&p, 1, timeout_ms);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return -errno;
        if (r == 0) return 2;
        if (p.revents & POLLIN) return 1;
        return 0;   // POLLHUP: every process under the filter has ended
    }
}

int mdevsim_send_fd(int sock, int fd, const void *data, size_t len) {
    struct iovec io = {.iov_base = (void *)data, .iov_len = len};
    char control[CMSG_SPACE(sizeof(int))];
    memset(control, 0, sizeof control);
    struct msghdr m = {.msg_iov = &io, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof control};
    struct cmsghdr *h = CMSG_FIRSTHDR(&m);
    h->cmsg_level = SOL_SOCKET;
    h->cmsg_type = SCM_RIGHTS;
    h->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(h), &fd, sizeof fd);
    for (;;) {
        ssize_t r = sendmsg(sock, &m, MSG_NOSIGNAL);
        if (r >= 0) return 0;
        if (errno != EINTR) return -errno;
    }
}

ssize_t mdevsim_recv_fd(int sock, int *fd, void *data, size_t len) {
    struct iovec io = {.iov_base = data, .iov_len = len};
    char control[CMSG_SPACE(sizeof(int))];
    struct msghdr m = {.msg_iov = &io, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof control};
    *fd = -1;
    ssize_t r;
    do r = recvmsg(sock, &m, MSG_CMSG_CLOEXEC); while (r < 0 && errno == EINTR);
    if (r < 0) return -errno;
    for (struct cmsghdr *h = CMSG_FIRSTHDR(&m); h; h = CMSG_NXTHDR(&m, h)) {
        if (h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_RIGHTS && h->cmsg_len >= CMSG_LEN(sizeof(int))) {
            memcpy(fd, CMSG_DATA(h), sizeof(int));
        }
    }
    return r;
}

int mdevsim_peer_uid(int sock, uint32_t *uid, int32_t *pid) {
    struct ucred c;
    socklen_t l = sizeof c;
    if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &c, &l) != 0) return -errno;
    *uid = c.uid;
    *pid = c.pid;
    return 0;
}

int mdevsim_pidfd_open(pid_t pid) {
    long r = syscall(SYS_pidfd_open, pid, 0);
    return r < 0 ? -errno : (int)r;
}

int mdevsim_pidfd_getfd(int pidfd, int fd) {
    long r = syscall(SYS_pidfd_getfd, pidfd, fd, 0);
    return r < 0 ? -errno : (int)r;
}

ssize_t mdevsim_mem_read(pid_t pid, uint64_t addr, void *buf, size_t len) {
    struct iovec local = {.iov_base = buf, .iov_len = len};
    struct iovec remote = {.iov_base = (void *)(uintptr_t)addr, .iov_len = len};
    ssize_t r = process_vm_readv(pid, &local, 1, &remote, 1, 0);
    return r < 0 ? -errno : r;
}

ssize_t mdevsim_mem_write(pid_t pid, uint64_t addr, const void *buf, size_t len) {
    struct iovec local = {.iov_base = (void *)buf, .iov_len = len};
    struct iovec remote = {.iov_base = (void *)(uintptr_t)addr, .iov_len = len};
    ssize_t r = process_vm_writev(pid, &local, 1, &remote, 1, 0);
    return r < 0 ? -errno : r;
}

int mdevsim_memfd(const char *name, uint64_t size) {
    int fd = memfd_create(name, MFD_CLOEXEC);
    if (fd < 0) return -errno;
    if (size && ftruncate(fd, (off_t)size) != 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

int mdevsim_eventfd_signal(int fd) {
    uint64_t one = 1;
    return write(fd, &one, sizeof one) == sizeof one ? 0 : -errno;
}
