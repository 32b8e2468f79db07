#!/usr/bin/env python3
"""Deep-model training benchmark on the default demo lake.

For each deep model: train it with `shelfcast train` (release build), read the training report
from the model card in the lake, and time `shelfcast predict` with it. Prints epoch time,
training samples/s, the share of training spent building batches (outside libtorch's forward and
backward; target: under 10%), inference series/s, and each command's peak memory.

Usage: python3 benches/bench_train.py [--series 200] [--days 1095] [--models lstm,transformer]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / "target" / "release" / "shelfcast"


def run(args: list[str]) -> tuple[float, float]:
    """Runs one command in a child process; returns (wall seconds, peak RSS MiB) of that command."""
    probe = (
        "import resource, subprocess, sys, time; t = time.time(); "
        "r = subprocess.run(sys.argv[1:]); "
        "print(time.time() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024); "
        "sys.exit(r.returncode)"
    )
    out = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"failed: {' '.join(args)}\n{out.stderr}")
    wall, peak = out.stdout.strip().splitlines()[-1].split()
    return float(wall), float(peak)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--series", type=int, default=200)
    ap.add_argument("--days", type=int, default=1095)
    ap.add_argument("--models", default="lstm,transformer")
    ap.add_argument("--dir", default=os.path.expanduser("~/.cache/shelfcast/bench/train"))
    a = ap.parse_args()
    lake = Path(a.dir) / f"lake-{a.series}x{a.days}"
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    base = [str(BIN), "--lake", str(lake), "-q"]
    run(base + ["demo", "--if-empty", "--series", str(a.series), "--days", str(a.days), "--end", "2026-06-30"])
    rows = []
    for model in a.models.split(","):
        train_s, train_mb = run(base + ["--models", model, "train", "--date", "2026-07-01"])
        latest = json.loads((lake / "models" / model / "latest.json").read_text())["version"]
        card = json.loads((lake / "models" / model / latest / "card.json").read_text())
        tr = card["details"]["training"]
        predict_s, predict_mb = run(base + ["--models", model, "predict", "--date", "2026-07-01"])
        rows.append((model, tr["epochs"], tr["epoch_s"], tr["samples_per_s"], 100 * tr["data_share"],
                     train_s, train_mb, card["series"] / predict_s, predict_mb, card["details"].get("device", "cpu")))
    print(f"demo lake: {a.series} series x {a.days} days; {os.cpu_count()} cores; OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}")
    print("| model | epochs | s/epoch | samples/s | data prep % | train s (incl. checks, features) | train peak MB | predict series/s (incl. features) | predict peak MB | device |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]:.2f} | {r[3]:.0f} | {r[4]:.1f} | {r[5]:.1f} | {r[6]:.0f} | {r[7]:.1f} | {r[8]:.0f} | {r[9]} |")


if __name__ == "__main__":
    main()
