#!/usr/bin/env bash
# A small Linux guest for the VMM tests, from Debian's packages, taken apart rather than
# installed: the kernel image Debian's linux-image-amd64 points at, its uio modules, and
# busybox-static. Prints the directory that holds vmlinuz, busybox and the modules.
#
#   scripts/guest-assets.sh [DIR]      (default: $MDEVSIM_GUEST_DIR or /var/cache/mdevsim-guest)
set -euo pipefail
DIR=${1:-${MDEVSIM_GUEST_DIR:-/var/cache/mdevsim-guest}}
mkdir -p "$DIR"
cd "$DIR"
if [ ! -s vmlinuz ] || [ ! -s busybox ]; then
    kernel=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
    [ -n "$kernel" ] || { echo "guest-assets: apt-cache knows no linux-image-amd64 (apt-get update?)" >&2; exit 1; }
    rm -rf pkg && mkdir pkg && cd pkg
    # apt's sandbox user cannot write here; root downloads it itself (the warning is expected).
    apt-get download -q "$kernel" busybox-static >/dev/null 2>&1 || apt-get download "$kernel" busybox-static >&2
    for deb in ./*.deb; do dpkg-deb -x "$deb" root; done
    cd ..
    cp pkg/root/boot/vmlinuz-* vmlinuz.new
    cp pkg/root/bin/busybox busybox.new
    mkdir -p modules
    for m in uio uio_pci_generic; do
        f=$(find pkg/root/lib/modules -name "$m.ko*" | head -1)
        [ -n "$f" ] || { echo "guest-assets: $m.ko is not in $kernel" >&2; exit 1; }
        case "$f" in *.xz) xz -dc "$f" > "modules/$m.ko" ;; *.zst) zstd -dcq "$f" > "modules/$m.ko" ;; *) cp "$f" "modules/$m.ko" ;; esac
    done
    mv busybox.new busybox
    mv vmlinuz.new vmlinuz
    rm -rf pkg
    echo "$kernel" > kernel-package
fi
echo "$DIR"
