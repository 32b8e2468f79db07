#!/usr/bin/env python3
"""The accuracy cost of warm starts: night after night, fine-tuned against trained from scratch.

1. Makes the demo lake (`shelfcast demo`, release build) once, under the cache folder.
2. Runs the same nights twice with `shelfcast backfill`, each time on a fresh copy of the lake, with
   a job of checks, features, train, predict and publish (no backtest, so only the training
   differs): once with the `[train]` defaults (the first night trains from scratch, every later
   one fine-tunes the night before's model for `fine-tune-epochs`), once with `warm-start =
   false` (every night from scratch).
3. Scores every night's forecast of every model (the shadow forecasts the publish step keeps)
   against the lake's actuals with ../shared/bench/score.py, pooled over the nights, and prints per
   model the MASE, WAPE and 80% coverage of both, the warm one's MASE against the from-scratch one
   (in %), and each backfill's seconds.

The nights end early enough that every forecast's horizon has actuals in the lake.

Usage: python3 benches/bench_warm.py [--series 200] [--days 1095] [--nights 7] [--horizon 28]
                                     [--models lstm,transformer] [--python SCORE_PYTHON]
                                     [--bin target/release/shelfcast]
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from benchlib import BIN, SHARED, fresh_lake, score_python

END = "2026-06-30"

JOB = """name = "nights"
description = "Fit, forecast and publish, without a backtest: the warm-start benchmark's night"
schedule = "0 0 2 * * *"
timezone = "UTC"
concurrency = "skip"
catch-up = "latest"
lease-ttl = "10m"

[[steps]]
name = "checks"
kind = "checks"

[[steps]]
name = "features"
kind = "features"

[[steps]]
name = "train"
kind = "train"

[[steps]]
name = "predict"
kind = "predict"

[[steps]]
name = "publish"
kind = "publish"
"""

# Every published night's shadow forecasts in score.py's format (run with the scoring python).
TO_CANONICAL = """
import datetime as dt, glob, sys
import pandas as pd
lake, out = sys.argv[1], sys.argv[2]
parts = []
for p in sorted(glob.glob(f"{lake}/shadow/run_date=*")):
    day = dt.date.fromisoformat(p.rsplit("=", 1)[1])
    f = pd.read_parquet(p)
    parts.append(pd.DataFrame({
        "unique_id": f.item_id + "/" + f.location_id,
        "ds": pd.to_datetime(f.target_date).dt.date.astype(str),
        "cutoff": str(day - dt.timedelta(days=1)),
        "y_hat": f["mean"], "y_lo": f["q10"], "y_hi": f["q90"], "method": f["model"]}))
if not parts:
    sys.exit(f"no shadow forecasts under {lake}/shadow")
pd.concat(parts).to_parquet(out)
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--series", type=int, default=200)
    ap.add_argument("--days", type=int, default=1095)
    ap.add_argument("--nights", type=int, default=7)
    ap.add_argument("--horizon", type=int, default=28)
    ap.add_argument("--models", default="lstm,transformer")
    ap.add_argument("--python", help="python with pandas and pyarrow for score.py")
    ap.add_argument("--bin", default=str(BIN), help="the shelfcast binary (default: the release build)")
    ap.add_argument("--dir", default=os.path.expanduser("~/.cache/shelfcast/bench/warm"))
    a = ap.parse_args()
    if not Path(a.bin).exists():
        sys.exit(f"no binary at {a.bin} (make build, or --bin PATH)")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    py = score_python(a.python)
    work = Path(a.dir)
    source = work / f"lake-{a.series}x{a.days}"
    if not (source / "raw" / "sales").exists():
        subprocess.run([a.bin, "--lake", str(source), "-q", "demo", "--series", str(a.series), "--days",
                        str(a.days), "--end", END], check=True, stdout=subprocess.DEVNULL)
    jobs = work / "jobs"
    jobs.mkdir(parents=True, exist_ok=True)
    (jobs / "nights.toml").write_text(JOB)
    # The last night's horizon ends the day before the lake's last day.
    last = dt.date.fromisoformat(END) - dt.timedelta(days=a.horizon + 1)
    first = last - dt.timedelta(days=a.nights - 1)
    models = [m for m in a.models.split(",") if m]

    actuals = work / "actuals.parquet"
    subprocess.run([a.bin, "--lake", str(source), "-q", "--models", "seasonal_naive", "--horizon", str(a.horizon),
                    "backtest", "--windows", "1", "--export", str(work / "unused.parquet"),
                    "--export-actuals", str(actuals)], check=True, capture_output=True)

    results = {}
    for arm, train in (("warm", ""), ("scratch", "[train]\nwarm-start = false\n")):
        lake = fresh_lake(source, work / f"nights-{arm}")
        settings = work / f"settings-{arm}.toml"
        settings.write_text(f"models = {json.dumps(models)}\njobs-dir = \"{jobs}\"\n{train}")
        print(f"{arm}: {a.nights} nights {first} .. {last}, models {','.join(models)} ...", flush=True)
        t0 = time.time()
        subprocess.run([a.bin, "-c", str(settings), "--lake", str(lake), "-q", "--horizon", str(a.horizon),
                        "backfill", "--from", str(first), "--to", str(last), "nights"], check=True,
                       stdout=subprocess.DEVNULL)
        seconds = time.time() - t0
        fc = work / f"forecasts-{arm}.parquet"
        subprocess.run([py, "-c", TO_CANONICAL, str(lake), str(fc)], check=True)
        scored = work / f"score-{arm}.json"
        subprocess.run([py, str(SHARED / "bench" / "score.py"), "--forecasts", str(fc), "--actuals", str(actuals),
                        "--season", "7", "--json", str(scored)], check=True, capture_output=True)
        results[arm] = (json.loads(scored.read_text()), seconds)

    def overall(arm: str, model: str) -> dict:
        return results[arm][0]["methods"][model]["overall"]

    print(f"\n{a.series} series x {a.days} days, {a.nights} nights {first} .. {last}, horizon {a.horizon}; "
          f"backfill warm {results['warm'][1]:.0f} s, from scratch {results['scratch'][1]:.0f} s")
    print("| model | MASE warm | MASE from scratch | warm vs scratch | WAPE % warm / scratch | cov80 warm / scratch |")
    print("|---|---|---|---|---|---|")
    for m in models:
        w, s = overall("warm", m), overall("scratch", m)
        print(f"| {m} | {w['MASE']:.3f} | {s['MASE']:.3f} | {100 * (w['MASE'] / s['MASE'] - 1):+.1f}% | "
              f"{w['WAPE']:.2f} / {s['WAPE']:.2f} | {w['coverage']:.3f} / {s['coverage']:.3f} |")


if __name__ == "__main__":
    main()
