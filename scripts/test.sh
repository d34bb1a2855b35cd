#!/usr/bin/env bash
# Runs the whole test suite: unit tests, mount tests on real FUSE mounts, and
# interop tests that drive the real mdevctl through `mdevsim exec` (root needed
# for the mount and namespace tests; they are skipped, not failed, without it).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
swift build --build-tests
swift test --skip-build "$@"
