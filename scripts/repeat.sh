#!/usr/bin/env bash
# Runs chosen test suites N times in a row and counts failures: the check
# that concurrency and crash-safety tests pass repeatedly, not by luck.
#
#   scripts/repeat.sh [-n N] [FILTER...]
#
# FILTER is a swift test --filter expression (default: the concurrency,
# crash-safety and daemon suites). Builds once, then runs without building.
set -uo pipefail
cd "$(dirname "$0")/.."
n=20
[ "${1:-}" = "-n" ] && { n="$2"; shift 2; }
filters=("$@")
[ ${#filters[@]} -gt 0 ] || filters=(ConcurrencyTests CrashSafetyTests DaemonTests)
args=()
for f in "${filters[@]}"; do args+=(--filter "$f"); done
swift build --build-tests >&2 || exit 1
failures=0
for i in $(seq 1 "$n"); do
    start=$(date +%s.%N)
    if out=$(swift test --skip-build "${args[@]}" 2>&1); then result=pass; else result=FAIL; failures=$((failures + 1)); fi
    tests=$(printf '%s\n' "$out" | grep -o 'Test run with [0-9]* tests' | grep -o '[0-9]*' | tail -1)
    printf 'run %2d/%d: %s (%s tests, %.1f s)\n' "$i" "$n" "$result" "${tests:-?}" "$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { print b - a }')"
    [ "$result" = FAIL ] && printf '%s\n' "$out" | grep -E '✘' | head -20
done
echo "$failures of $n runs failed (${filters[*]})"
[ "$failures" = 0 ]
