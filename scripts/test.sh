#!/usr/bin/env bash
# Runs the whole test suite: unit tests, mount tests on real FUSE mounts, and
# interop tests that drive the real mdevctl through `mdevsim exec`.
# Without /dev/fuse, root or mdevctl the tests that need them are skipped and
# listed as skipped; with CI=true they fail instead. Ends with a table of
# passed / failed / skipped tests per suite (scripts/test-summary.py).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
swift build --build-tests
# docs/architecture.md's module graph must be Package.swift's.
python3 scripts/module-graph.py --check
results=$(mktemp -d)
trap 'rm -rf "$results"' EXIT
status=0
# A hang (a test blocked in the kernel, past swift-testing's time limits) fails
# the run after 15 minutes instead of holding CI for its whole budget.
# The real daemons' suites (QEMU processes, a guest booting under TCG, libvirtd) run on their
# own after the rest: their long blocking waits would otherwise starve the other suites of
# test threads on 2 cores.
DAEMONS='QEMUTests|LibvirtTests'
timeout --signal=KILL 900 swift test --skip-build --skip "$DAEMONS" --xunit-output "$results/tests.xml" "$@" || status=$?
if [ "$status" -ne 137 ]; then
    timeout --signal=KILL 600 swift test --skip-build --filter "$DAEMONS" --xunit-output "$results/daemons.xml" "$@" || { s=$?; [ "$status" -ne 0 ] || status=$s; }
fi
if [ "$status" -eq 137 ]; then
    echo "scripts/test.sh: the test run did not end within 15 minutes (killed); a test hung" >&2
    pkill -KILL -f 'mdevsimPackageTests.xctest' 2>/dev/null || true   # swift test's child outlives it
fi
echo
echo "tests per suite:"
summary=0
python3 scripts/test-summary.py "$results"/*.xml || summary=$?
[ "$status" -ne 0 ] && exit "$status"
exit "$summary"
