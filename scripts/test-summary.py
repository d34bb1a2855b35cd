#!/usr/bin/env python3
"""Prints how many tests passed, failed and were skipped in each suite, from
the xUnit files `swift test --xunit-output` writes, and exits 1 when a suite
ran no test at all or any test failed (a run that skipped everything must not
look green)."""
import sys
import xml.etree.ElementTree as ET
from collections import defaultdict

counts = defaultdict(lambda: {"passed": 0, "failed": 0, "skipped": 0})
for path in sys.argv[1:]:
    try:
        root = ET.parse(path)
    except (OSError, ET.ParseError) as e:
        print(f"test-summary: cannot read {path}: {e}", file=sys.stderr)
        sys.exit(1)
    for case in root.iter("testcase"):
        suite = case.get("classname", "?")
        if case.find("failure") is not None or case.find("error") is not None:
            counts[suite]["failed"] += 1
        elif case.find("skipped") is not None:
            counts[suite]["skipped"] += 1
        else:
            counts[suite]["passed"] += 1

if not counts:
    print("test-summary: no test ran", file=sys.stderr)
    sys.exit(1)
width = max(len(s) for s in counts)
total = {"passed": 0, "failed": 0, "skipped": 0}
for suite in sorted(counts):
    c = counts[suite]
    for k in total:
        total[k] += c[k]
    print(f"{suite:<{width}}  {c['passed']:4d} passed  {c['failed']:3d} failed  {c['skipped']:3d} skipped")
print(f"{total['passed']} passed, {total['failed']} failed, {total['skipped']} skipped")
sys.exit(1 if total["failed"] else 0)
