"""Helpers the benchmark scripts share."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
BIN = ROOT / "target" / "release" / "shelfcast"


def score_python(given: str | None) -> str:
    """A python with pandas and pyarrow for score.py: `given`, the cached one, or set up now."""
    if given:
        return given
    cached = Path(os.path.expanduser("~/.cache/shelfcast/pyscore/bin/python"))
    if cached.exists():
        return str(cached)
    out = subprocess.run(["bash", str(SHARED / "bench" / "setup.sh")], capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()[-1]


def fresh_lake(source: Path, dest: Path) -> Path:
    """`dest` emptied and given the demo lake's inputs from `source` (raw tables and the demo's
    truth), none of its outputs: a lake whose first run finds no stored model."""
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    for part in ("raw", "_demo"):
        if (source / part).exists():
            shutil.copytree(source / part, dest / part)
    return dest
