#!/usr/bin/env python3
"""The models on the demo lake: accuracy, interval coverage and time per model, scored by score.py.

1. Makes the demo lake (`shelfcast demo`, release build, local layer included) once, under the
   cache folder.
2. Backtests the models in one command (same windows for all; the learned ensemble reuses its
   members' forecasts), exports the forecasts and the actuals.
3. Scores them with ../shared/bench/score.py and prints, per model, MASE, WAPE, 80% coverage and
   the seconds the backtest spent on it (from shelfcast's own report), best MASE first; then the
   published forecast (each demand class's champion, crowned on the windows before each cutoff
   as the nightly crowns it), which is what a planner would have received.

Usage: python3 benches/bench_demo.py [--series 200] [--days 730] [--horizon 28] [--windows 3]
                                     [--models seasonal_naive,ets,tsb,gbt,ensemble,median]
                                     [--python SCORE_PYTHON] [--bin target/release/shelfcast]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import time
from pathlib import Path

from benchlib import BIN, SHARED, score_python


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--series", type=int, default=200)
    ap.add_argument("--days", type=int, default=730)
    ap.add_argument("--horizon", type=int, default=28)
    ap.add_argument("--windows", type=int, default=3)
    ap.add_argument("--models", default="seasonal_naive,ets,tsb,gbt,ensemble,median")
    ap.add_argument("--python", help="python with pandas and pyarrow for score.py")
    ap.add_argument("--bin", default=str(BIN), help="the shelfcast binary (default: the release build)")
    ap.add_argument("--dir", default=os.path.expanduser("~/.cache/shelfcast/bench/demo"))
    a = ap.parse_args()
    work = Path(a.dir) / f"{a.series}x{a.days}"
    lake = work / "lake"
    bin_ = a.bin
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if not (lake / "raw" / "sales").exists():
        subprocess.run([bin_, "--lake", str(lake), "-q", "demo", "--series", str(a.series), "--days", str(a.days),
                        "--end", "2026-06-30"], check=True)
    fc, act = work / "forecasts.parquet", work / "actuals.parquet"
    t0 = time.time()
    out = subprocess.run([bin_, "--lake", str(lake), "-q", "--models", a.models, "--horizon", str(a.horizon),
                          "backtest", "--windows", str(a.windows), "--export", str(fc), "--export-actuals", str(act)],
                         check=True, capture_output=True, text=True).stdout
    seconds = time.time() - t0
    # shelfcast's table: the model name first, its seconds last.
    own = {}
    for line in out.splitlines():
        parts = line.split()
        # The first table only (the WRMSSE table after it starts with the names too).
        if parts and parts[0] in a.models.split(",") and parts[0] not in own and re.match(r"^[0-9.]+$", parts[-1]):
            own[parts[0]] = float(parts[-1])
    scored = work / "score.json"
    subprocess.run([score_python(a.python), str(SHARED / "bench" / "score.py"), "--forecasts", str(fc),
                    "--actuals", str(act), "--season", "7", "--json", str(scored)], check=True, capture_output=True)
    methods = json.loads(scored.read_text())["methods"]
    print(f"Demo lake: {a.series} series × {a.days} days, daily, H={a.horizon}, {a.windows} windows; "
          f"backtest {seconds:.0f} s in all")
    print("| model | MASE | WAPE % | cov80 | seconds |")
    print("|---|---|---|---|---|")
    rows = sorted(a.models.split(","), key=lambda m: methods[m]["overall"].get("MASE") or float("inf"))
    for m in rows + [m for m in ("published",) if m in methods]:
        o = methods[m]["overall"]
        secs = f"{own[m]:.0f}" if m in own else "-"
        print(f"| {m} | {o['MASE']:.3f} | {o['WAPE']:.2f} | {o.get('coverage', float('nan')):.3f} | {secs} |")
    # shelfcast's list of the champions the published forecast took at each cutoff.
    lines = out.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("published:")), None)
    if start is not None:
        print(lines[start])
        for line in lines[start + 1:]:
            if not re.match(r"^  \d{4}-\d\d-\d\d: ", line):
                break
            print(line)


if __name__ == "__main__":
    main()
