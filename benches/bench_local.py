#!/usr/bin/env python3
"""The demo's local layer, before and after: what closures, local calendars and the user's own
covariates are worth to the models that read them.

1. Makes the demo lake with its local layer (`shelfcast demo`, release build): a weekly closing
   day at some locations, public-holiday closures, works, regional holidays and a planned
   `local_marketing` covariate with a known true effect (`_demo/truth.json`).
2. Copies its raw tables without `closures`, `known_covariates` and the regional calendar rows:
   the same sales, without being told why they moved.
3. Backtests the models on both lakes (same windows), exports the forecasts and scores them with
   ../shared/bench/score.py, and prints MASE, WAPE and 80% coverage with and without the local
   tables, and their ratio.

Usage: python3 benches/bench_local.py [--series 200] [--days 730] [--models gbt,seasonal_naive]
                                      [--windows 3] [--python SCORE_PYTHON]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

from benchlib import BIN, SHARED, score_python


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--series", type=int, default=200)
    ap.add_argument("--days", type=int, default=730)
    ap.add_argument("--models", default="gbt,seasonal_naive")
    ap.add_argument("--windows", type=int, default=3)
    ap.add_argument("--horizon", type=int, default=28)
    ap.add_argument("--python", help="python with pandas and pyarrow for score.py")
    ap.add_argument("--dir", default=os.path.expanduser("~/.cache/shelfcast/bench/local"))
    a = ap.parse_args()
    work = Path(a.dir) / f"{a.series}x{a.days}"
    told, blind = work / "lake", work / "lake-without-local"
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if not (told / "raw" / "sales").exists():
        subprocess.run([str(BIN), "--lake", str(told), "-q", "demo", "--series", str(a.series), "--days", str(a.days),
                        "--end", "2026-06-30"], check=True)
    if not blind.exists():
        def leave_out(folder: str, names: list[str]) -> list[str]:
            here = Path(folder)
            out = [n for n in names if n in ("closures", "known_covariates")]
            if here.name == "calendar":
                out += [n for n in names if n.startswith("part-00001")]
            return out
        shutil.copytree(told / "raw", blind / "raw", ignore=leave_out)
    py = score_python(a.python)
    results = {}
    for label, lake in (("with", told), ("without", blind)):
        fc, act = work / f"forecasts-{label}.parquet", work / "actuals.parquet"
        t0 = time.time()
        subprocess.run([str(BIN), "--lake", str(lake), "-q", "--models", a.models, "--horizon", str(a.horizon),
                        "backtest", "--windows", str(a.windows), "--export", str(fc), "--export-actuals", str(act)],
                       check=True)
        seconds = time.time() - t0
        out = work / f"score-{label}.json"
        subprocess.run([py, str(SHARED / "bench" / "score.py"), "--forecasts", str(fc), "--actuals", str(act),
                        "--season", "7", "--json", str(out)], check=True, capture_output=True)
        results[label] = (json.loads(out.read_text())["methods"], seconds)
    print(f"Demo lake with its local layer: {a.series} series × {a.days} days, daily, H={a.horizon}, "
          f"{a.windows} windows; backtest {results['with'][1]:.0f} s with the local tables, "
          f"{results['without'][1]:.0f} s without")
    print("| model | MASE with | MASE without | ratio | WAPE with | WAPE without | cov80 with | cov80 without |")
    print("|---|---|---|---|---|---|---|---|")
    for model in a.models.split(","):
        w, wo = results["with"][0][model]["overall"], results["without"][0][model]["overall"]
        ratio = w["MASE"] / wo["MASE"] if wo.get("MASE") else float("nan")
        print(f"| {model} | {w['MASE']:.3f} | {wo['MASE']:.3f} | {ratio:.3f} | {w['WAPE']:.2f} | {wo['WAPE']:.2f} | "
              f"{w.get('coverage', float('nan')):.3f} | {wo.get('coverage', float('nan')):.3f} |")


if __name__ == "__main__":
    main()
