#!/usr/bin/env bash
# Installs what mdevsim needs on Debian/Ubuntu, only where it is missing:
# libfuse3 headers (pkg-config fuse3), fusermount3, mdevctl (interop tests), pciutils,
# udev, and QEMU (the VMM tests run an unmodified qemu-system-x86_64 on the vGPUs).
set -euo pipefail
need=()
pkg-config --exists fuse3 2>/dev/null || need+=(libfuse3-dev pkg-config)
command -v fusermount3 >/dev/null || need+=(fuse3)
command -v mdevctl >/dev/null || need+=(mdevctl)
command -v lspci >/dev/null || need+=(pciutils)
command -v udevadm >/dev/null || need+=(udev)
command -v gcc >/dev/null || need+=(gcc)
command -v python3 >/dev/null || need+=(python3)
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
[ -x /usr/sbin/ip ] || need+=(iproute2)
[ -x /usr/sbin/libvirtd ] || need+=(libvirt-daemon)
command -v virsh >/dev/null || need+=(libvirt-clients)
if [ ${#need[@]} -gt 0 ]; then
    echo "mdevsim: installing ${need[*]}" >&2
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
command -v swift >/dev/null || { echo "mdevsim: the Swift 6 toolchain is needed (swift not on PATH)" >&2; exit 1; }
