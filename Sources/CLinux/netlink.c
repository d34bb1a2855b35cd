#define _GNU_SOURCE
#include "clinux.h"
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <string.h>
#include <unistd.h>
#include <linux/netlink.h>
#include <sys/socket.h>
#include <sys/vfs.h>

int mdevsim_uevent_socket(int netns_fd) {
    int own = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (own < 0) return -errno;
    if (setns(netns_fd, CLONE_NEWNET) != 0) {
        int e = errno;
        close(own);
        return -e;
    }
    int s = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_KOBJECT_UEVENT);
    int e = errno;
    if (setns(own, CLONE_NEWNET) != 0) {
        // Cannot return to our own namespace: this thread must not go on.
        _exit(70);
    }
    close(own);
    if (s < 0) return -e;
    struct sockaddr_nl local = {.nl_family = AF_NETLINK};
    if (bind(s, (struct sockaddr *)&local, sizeof local) != 0) {
        e = errno;
        close(s);
        return -e;
    }
    return s;
}

int mdevsim_uevent_send(int sock, unsigned group, const void *data, size_t len) {
    struct sockaddr_nl to = {.nl_family = AF_NETLINK, .nl_groups = group};
    ssize_t r = sendto(sock, data, len, MSG_DONTWAIT, (struct sockaddr *)&to, sizeof to);
    return r < 0 ? -errno : 0;
}

int mdevsim_setns(int fd, int nstype) { return setns(fd, nstype) == 0 ? 0 : -errno; }

int mdevsim_is_namespace(int fd) {
    struct statfs fs;
    if (fstatfs(fd, &fs) != 0) return -errno;
    return fs.f_type == 0x6e736673 ? 1 : 0;   /* NSFS_MAGIC */
}
