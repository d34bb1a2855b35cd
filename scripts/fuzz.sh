#!/usr/bin/env bash
# Coverage-guided fuzzing of mdevsim's parsers and protocol state (libFuzzer).
#
#   scripts/fuzz.sh [-t SECONDS] [-j JOBS] [--json] [TARGET...]
#
# Builds mdevsim-fuzz with -sanitize=fuzzer (release, its own build folder
# .build/fuzz), then runs each target (all by default) for SECONDS (default 60)
# on a working corpus in .build/fuzz-corpus/TARGET seeded from
# testdata/fuzz/TARGET. Every target checks its invariants inside (no crash,
# allocations under 512 MB, a refused input leaves the device as it was).
# A crash is saved in .build/fuzz-artifacts/; copy it to
# testdata/fuzz/TARGET/regressions/ so the test suite replays it for ever.
# Prints the executions of each target and the total.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=60 jobs=1 json=0 targets=()
while [ $# -gt 0 ]; do
    case "$1" in
        -t) seconds="$2"; shift 2 ;;
        -j) jobs="$2"; shift 2 ;;
        --json) json=1; shift ;;
        -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) echo "fuzz.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
        *) targets+=("$1"); shift ;;
    esac
done
all=(stream stream-records v1-region v2-state attributes config fault-plan qemu-file)
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")
for t in "${targets[@]}"; do
    [[ " ${all[*]} " == *" $t "* ]] || { echo "fuzz.sh: unknown target '$t'; targets: ${all[*]}" >&2; exit 2; }
done

echo "building mdevsim-fuzz with libFuzzer (first build takes a few minutes)..." >&2
swift build -c release --scratch-path .build/fuzz --product mdevsim-fuzz \
    -Xswiftc -sanitize=fuzzer -Xswiftc -use-ld=lld >&2
bin=.build/fuzz/release/mdevsim-fuzz
mkdir -p .build/fuzz-artifacts .build/fuzz-logs
export SWIFT_BACKTRACE=enable=no

run_one() {
    local t="$1" corpus=".build/fuzz-corpus/$1"
    mkdir -p "$corpus" "testdata/fuzz/$t/regressions"
    "$bin" "$t" -max_total_time="$seconds" -malloc_limit_mb=512 -rss_limit_mb=2048 -timeout=10 \
        -print_final_stats=1 -artifact_prefix=".build/fuzz-artifacts/$t-" \
        "$corpus" "testdata/fuzz/$t" "testdata/fuzz/$t/regressions" > ".build/fuzz-logs/$t.log" 2>&1
}

status=0
for t in "${targets[@]}"; do
    echo "fuzzing $t for ${seconds}s..." >&2
    if [ "$jobs" -gt 1 ]; then
        run_one "$t" & 
        while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do sleep 1; done
    else
        run_one "$t" || true
    fi
done
wait || true

total=0 rows=()
for t in "${targets[@]}"; do
    log=".build/fuzz-logs/$t.log"
    runs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | awk '{print $2}' | tail -1)
    crashed=no
    # Any sanitizer report (UBSan's stack-overflow too) or a saved artifact is a crash.
    if grep -qE 'ERROR: libFuzzer|ERROR: [A-Za-z]+Sanitizer|invariant broken|Fatal error|deadly signal|out-of-memory|malloc\(' "$log" \
        || ls .build/fuzz-artifacts/"$t"-* >/dev/null 2>&1; then crashed=yes; status=1; fi
    runs=${runs:-0}
    total=$((total + runs))
    rows+=("$t $runs $crashed")
done

if [ "$json" = 1 ]; then
    printf '{"seconds_per_target": %s, "targets": [' "$seconds"
    sep=""
    for r in "${rows[@]}"; do set -- $r; printf '%s{"target": "%s", "executions": %s, "crashed": %s}' "$sep" "$1" "$2" "$([ "$3" = yes ] && echo true || echo false)"; sep=", "; done
    printf '], "total_executions": %s}\n' "$total"
else
    printf '%-12s %14s  %s\n' target executions crashed
    for r in "${rows[@]}"; do set -- $r; printf '%-12s %14s  %s\n' "$1" "$2" "$3"; done
    printf '%-12s %14s\n' total "$total"
    [ $status = 0 ] || echo "a target crashed: see .build/fuzz-logs/ and .build/fuzz-artifacts/" >&2
fi
exit $status
