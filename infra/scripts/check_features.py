#!/usr/bin/env python3
"""Checks that building one function alone (`cargo lambda watch`, `cargo build -p NAME`) resolves
every dependency with the same features as the workspace's test build (`cargo test --workspace
--all-targets`), so it reuses that build's artifacts instead of compiling a second copy of the
dependency graph (minutes of a 2-core CI machine and gigabytes of its disk).

Cargo unifies features only over the packages a command selects (`resolver.feature-unification
= "workspace"` is unstable), so the workspace's dev-dependencies (tempfile, fantoccini, ...)
switch on features a function's own graph does not. `shared/workspace-hack`, a dependency of
every function, switches them on there too; this script says what it must list.

    python3 infra/scripts/check_features.py        # exit 1 and the missing lines when they differ
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FMT = ["-f", "{p}|{f}", "--prefix", "none"]


def tree(*args: str) -> dict[str, set[str]]:
    run = subprocess.run(["cargo", "tree", "--locked", *args, *FMT], cwd=ROOT,
                         capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(f"check_features: cargo tree {' '.join(args)} failed:\n{run.stderr}")
    out = run.stdout
    found: dict[str, set[str]] = {}
    for line in out.splitlines():
        line = line.removesuffix(" (*)").strip()
        if "|" not in line:
            continue
        package, features = line.split("|", 1)
        found.setdefault(package.strip(), set()).add(features)
    return found


def main() -> int:
    workspace = tree("--workspace", "-e", "normal,build,dev")
    missing: dict[str, set[str]] = {}
    functions = sorted(p.name for p in (ROOT / "functions").iterdir() if (p / "Cargo.toml").exists())
    for name in functions:
        alone = tree("-p", name, "-e", "normal,build")
        for package, sets in alone.items():
            extra = sets - workspace.get(package, set())
            if extra:
                missing.setdefault(package, set()).update(f"{name}: [{s}]" for s in extra)
    if missing:
        print("check_features: a function built alone resolves these dependencies with other "
              "features than the workspace's test build; add them to shared/workspace-hack with "
              "the workspace's features:", file=sys.stderr)
        for package in sorted(missing):
            print(f"  {package}: workspace [{' | '.join(sorted(workspace.get(package, {'-'})))}]",
                  file=sys.stderr)
            for line in sorted(missing[package]):
                print(f"      {line}", file=sys.stderr)
        return 1
    print(f"check_features: {len(functions)} functions resolve their dependencies as the "
          "workspace does")
    return 0


if __name__ == "__main__":
    sys.exit(main())
