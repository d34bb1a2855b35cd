#!/usr/bin/env bash
# Attribute open+read+close through an mdevsim mount vs a minimal C libfuse
# low-level server with the same semantics (direct I/O, zero timeouts, same path
# depth), built from bench/. Server and client are pinned to one CPU and the two
# are interleaved over ROUNDS rounds (these 2-core machines are only repeatable
# that way); the median of each is reported with the ratio.
#
#   bench/run.sh [--rounds N] [--seconds S] [--json]
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=3; SECONDS_PER=2; JSON=0
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) ROUNDS=$2; shift 2 ;;
        --seconds) SECONDS_PER=$2; shift 2 ;;
        --json) JSON=1; shift ;;
        -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
        *) echo "unknown option $1" >&2; exit 64 ;;
    esac
done
scripts/deps.sh
OUT=bench/out; mkdir -p "$OUT"
swift build -c release --product mdevsim >&2
BIN=.build/release/mdevsim
gcc -O2 -Wall -o "$OUT/c_attr_server" bench/c_attr_server.c $(pkg-config --cflags --libs fuse3)
gcc -O2 -Wall -o "$OUT/orc_client" bench/orc_client.c

ATTR=sys/devices/pci0000:00/0000:00:02.0/mdev_supported_types/i915-GVTg_V5_4/available_instances
MS=/tmp/mdevsim-bench/swift; MC=/tmp/mdevsim-bench/c
mkdir -p "$MS" "$MC"
umount -l "$MS" 2>/dev/null || true; umount -l "$MC" 2>/dev/null || true
PIN="taskset -c 0"
$PIN "$BIN" mount "$MS" --single-threaded 2>/dev/null &
SPID=$!
$PIN "$OUT/c_attr_server" "$MC" "$ATTR" '5\n' -s &
CPID=$!
trap 'kill $SPID $CPID 2>/dev/null; wait 2>/dev/null' EXIT
for _ in $(seq 200); do [ -e "$MS/$ATTR" ] && [ -e "$MC/$ATTR" ] && break; sleep 0.05; done
[ "$(cat "$MS/$ATTR")" = "$(cat "$MC/$ATTR")" ] || { echo "the two servers disagree on $ATTR" >&2; exit 1; }

measure() { $PIN "$OUT/orc_client" "$1/$ATTR" "$SECONDS_PER"; }
measure "$MC" >/dev/null; measure "$MS" >/dev/null     # warm-up
c_ops=(); s_ops=(); c_p50=(); s_p50=()
for r in $(seq "$ROUNDS"); do
    read -r ops p50 _ < <(measure "$MC"); c_ops+=("$ops"); c_p50+=("$p50")
    read -r ops p50 _ < <(measure "$MS"); s_ops+=("$ops"); s_p50+=("$p50")
    [ "$JSON" = 1 ] || echo "round $r: C ${c_ops[-1]} ops/s, mdevsim ${s_ops[-1]} ops/s" >&2
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
C=$(median "${c_ops[@]}"); S=$(median "${s_ops[@]}")
CP=$(median "${c_p50[@]}"); SP=$(median "${s_p50[@]}")
RATIO=$(awk -v s="$S" -v c="$C" 'BEGIN {printf "%.3f", s / c}')
COST=$(awk -v s="$S" -v c="$C" 'BEGIN {printf "%.3f", c / s}')
if [ "$JSON" = 1 ]; then
    printf '{"benchmark":"attribute open+read+close","pinned":true,"rounds":%d,"seconds_per_round":%s,"c_ops_per_sec":%s,"mdevsim_ops_per_sec":%s,"c_p50_us":%s,"mdevsim_p50_us":%s,"throughput_ratio":%s,"cost_ratio":%s}\n' \
        "$ROUNDS" "$SECONDS_PER" "$C" "$S" "$CP" "$SP" "$RATIO" "$COST"
else
    printf '\n%-34s %14s %10s\n' "attribute open+read+close (pinned)" "ops/s" "p50 µs"
    printf '%-34s %14s %10s\n' "C libfuse low-level baseline" "$C" "$CP"
    printf '%-34s %14s %10s\n' "mdevsim" "$S" "$SP"
    printf 'ratio mdevsim/C throughput: %s   (cost per op: %s× the C server)\n' "$RATIO" "$COST"
fi
