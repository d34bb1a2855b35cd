#!/usr/bin/env python3
"""Writes the module graph of Package.swift into docs/architecture.md, as Mermaid.

    scripts/module-graph.py          rewrite the graph between the markers
    scripts/module-graph.py --check  exit 1 if the committed graph is not Package.swift's

The graph comes from `swift package dump-package`, so it cannot drift from the
package: scripts/test.sh runs --check before the tests.
"""
import json, os, subprocess, sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(ROOT, "docs", "architecture.md")
BEGIN, END = "<!-- module-graph:begin (scripts/module-graph.py) -->", "<!-- module-graph:end -->"


def graph():
    package = json.loads(subprocess.run(["swift", "package", "dump-package"], cwd=ROOT, check=True,
                                        capture_output=True, text=True).stdout)
    targets = [t for t in package["targets"] if t["type"] in ("regular", "executable", "system")]
    names = {t["name"] for t in targets}
    lines = ["```mermaid", "graph BT"]
    for t in sorted(targets, key=lambda t: t["name"]):
        shape = {"executable": '(["%s"])', "system": '[/"%s"/]'}.get(t["type"], '["%s"]') % t["name"]
        lines.append("    %s%s" % (t["name"].replace("-", "_"), shape))
    for t in sorted(targets, key=lambda t: t["name"]):
        deps = []
        for d in t.get("dependencies", []):
            for kind, value in d.items():
                name = value[0] if isinstance(value, list) else value
                if name in names:
                    deps.append(name)
        for d in sorted(set(deps)):
            lines.append("    %s --> %s" % (t["name"].replace("-", "_"), d.replace("-", "_")))
    lines.append("```")
    return "\n".join(lines)


def main():
    text = open(DOC).read()
    if BEGIN not in text or END not in text:
        sys.exit("%s has no %s ... %s markers" % (DOC, BEGIN, END))
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    new = head + BEGIN + "\n" + graph() + "\n" + END + tail
    if "--check" in sys.argv[1:]:
        if new != text:
            sys.exit("docs/architecture.md: the module graph is not Package.swift's; run scripts/module-graph.py")
        return
    open(DOC, "w").write(new)


if __name__ == "__main__":
    main()
