#!/usr/bin/env python3
"""Import cycles between the top-level modules of `src/` (the layering README's Layout draws).

Reads every `src/<module>/**.rs` and `src/<module>.rs` (comments and `#[cfg(test)] mod tests`
blocks left out), collects the `crate::<module>` paths each top-level module names, and prints
the strongly connected components of that graph: each is a set of modules that import each other
through some chain. Exits 1 when there is one, 0 otherwise.

Usage: scripts/module_cycles.py [--edges] [SRC]    (--edges: also print every module's imports)
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

CRATE_PATH = re.compile(r"\bcrate::([a-z_][a-z0-9_]*)")
USE_GROUP = re.compile(r"use crate::\{([^;]*)\};", re.S)
LINE_COMMENT = re.compile(r"//[^\n]*")
TESTS = "#[cfg(test)]\nmod tests"


def modules(src: Path) -> dict[str, list[Path]]:
    """Top-level module name → its files (`main.rs`, `lib.rs` and `bin/` are the edge, left out)."""
    out: dict[str, list[Path]] = {}
    for path in sorted(src.rglob("*.rs")):
        first = path.relative_to(src).parts[0]
        if first in ("main.rs", "lib.rs", "bin"):
            continue
        out.setdefault(first.removesuffix(".rs"), []).append(path)
    return out


def imports(files: list[Path], names: set[str]) -> set[str]:
    found: set[str] = set()
    for path in files:
        text = path.read_text()
        if TESTS in text:
            text = text[: text.index(TESTS)]
        text = LINE_COMMENT.sub("", text)
        found.update(CRATE_PATH.findall(text))
        for group in USE_GROUP.findall(text):
            found.update(part.split("::")[0] for part in re.split(r"[,\s{}]+", group) if part)
    return found & names


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def main() -> int:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    src = Path(args[0] if args else Path(__file__).resolve().parent.parent / "src")
    mods = modules(src)
    names = set(mods)
    graph = {m: imports(files, names) - {m} for m, files in mods.items()}
    if "--edges" in sys.argv:
        for m in sorted(graph):
            print(f"{m:10} -> {' '.join(sorted(graph[m]))}")
    found = cycles(graph)
    for component in found:
        members = set(component)
        print(f"import cycle among {len(component)} modules: {' '.join(component)}")
        for m in component:
            print(f"  {m} -> {' '.join(sorted(graph[m] & members))}")
    if not found:
        print(f"no import cycle among the {len(graph)} top-level modules")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
