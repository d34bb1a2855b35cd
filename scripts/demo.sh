#!/usr/bin/env bash
# Builds mdevsim, mounts the built-in host (one Kaby Lake GT2 with GVT-g types) and
# shows it: the sysfs tree, mdevctl driving it, a vGPU created and removed.
# Leaves it mounted with --keep (unmount with: .build/debug/mdevsim unmount DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
swift build --product mdevsim
BIN=.build/debug/mdevsim
DIR=${MDEVSIM_DIR:-/tmp/mdevsim-demo}
KEEP=${1:-}
mkdir -p "$DIR"
"$BIN" unmount "$DIR" 2>/dev/null || true
"$BIN" mount "$DIR" &
PID=$!
cleanup() { [ "$KEEP" = --keep ] || { "$BIN" unmount "$DIR" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; }; }
trap cleanup EXIT
"$BIN" wait "$DIR"

TYPES="$DIR/sys/class/mdev_bus/0000:00:02.0/mdev_supported_types"
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
step ls "$TYPES"; ls "$TYPES"
step cat "$TYPES/i915-GVTg_V5_4/description"; cat "$TYPES/i915-GVTg_V5_4/description"
step "grep . $TYPES/*/available_instances"; grep . "$TYPES"/*/available_instances
step mdevsim exec "$DIR" -- mdevctl types; "$BIN" exec "$DIR" -- mdevctl types
step mdevsim exec "$DIR" -- mdevctl start -u 83b8f4f2-509f-382f-3c1e-e6bfe0fa1001 -p 0000:00:02.0 -t i915-GVTg_V5_4
"$BIN" exec "$DIR" -- mdevctl start -u 83b8f4f2-509f-382f-3c1e-e6bfe0fa1001 -p 0000:00:02.0 -t i915-GVTg_V5_4
step mdevsim exec "$DIR" -- mdevctl list; "$BIN" exec "$DIR" -- mdevctl list
step ls -l "$DIR/sys/bus/mdev/devices/83b8f4f2-509f-382f-3c1e-e6bfe0fa1001/"; ls -l "$DIR/sys/bus/mdev/devices/83b8f4f2-509f-382f-3c1e-e6bfe0fa1001/"
step "grep . $TYPES/*/available_instances   # one V5_4 taken from the shared pool"; grep . "$TYPES"/*/available_instances
step mdevsim exec "$DIR" -- mdevctl stop -u 83b8f4f2-509f-382f-3c1e-e6bfe0fa1001
"$BIN" exec "$DIR" -- mdevctl stop -u 83b8f4f2-509f-382f-3c1e-e6bfe0fa1001
A=11111111-2222-4333-8444-555555555555; B=66666666-7777-4888-8999-000000000000
echo $A > "$TYPES/i915-GVTg_V5_4/create"; echo $B > "$TYPES/i915-GVTg_V5_4/create"
sleep 0.3   # let the source's guest run a little
step mdevsim migrate "$DIR/vfio/$A" "$DIR/vfio/$B"; "$BIN" migrate "$DIR/vfio/$A" "$DIR/vfio/$B"
step mdevsim fsm --from RUNNING --to STOP_COPY; "$BIN" fsm --from RUNNING --to STOP_COPY | tail -1
if [ "$KEEP" = --keep ]; then
    echo; echo "mdevsim is serving $DIR (pid $PID); unmount with: $BIN unmount $DIR"
fi
