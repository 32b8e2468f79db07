#!/usr/bin/env python3
"""Real-data benchmark: shelfcast on the Walmart store × department weekly sales, next to the peers.

1. Imports ../shared/data/walmart with `shelfcast import --preset walmart` (the 2,660 series with
   all 143 weeks) into a lake under the cache folder (once).
2. Backtests the models with the standard protocol: weekly (weeks ending on Friday, as the data
   is reported), horizon 13, 3 windows, step 13, season 52; exports the forecasts and actuals.
3. Scores them with ../shared/bench/score.py, the scorer every system is compared with; the
   `published` row is the forecast the nightly would have published (each demand class's
   champion, crowned on the windows before each cutoff).
4. Prints shelfcast's models next to the peers: run by ../shared/bench/forecast_peers.py on the
   same data in this command, or read from ../shared/bench/results/walmart-peers.json with
   --no-peers.

With --covariates-ablation, `gbt` is also backtested on a copy of the lake without the
location covariates the preset imports (temperature, fuel price, CPI, unemployment in
`known_covariates`) and scored as `gbt_without_covariates`, so the table shows what they change.

Usage: python3 benches/bench_walmart.py [--models a,b] [--no-peers] [--python PEERS_PYTHON]
                                        [--covariates-ablation]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
BIN = ROOT / "target" / "release" / "shelfcast"
METRICS = ["MAE", "RMSE", "WAPE", "sMAPE", "MASE", "R2", "bias", "coverage", "pinball"]


def peers_python(given: str | None) -> str:
    if given:
        return given
    out = subprocess.run(["bash", str(SHARED / "bench" / "setup.sh")], capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()[-1]


def fmt(v) -> str:
    if v is None:
        return "-"
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.3f}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="seasonal_naive,ets,theta,tsb,gbt,lstm,ensemble")
    ap.add_argument("--no-peers", action="store_true", help="read the peers' results instead of running them")
    ap.add_argument("--python", help="python with the peers' packages (default: from ../shared/bench/setup.sh)")
    ap.add_argument("--dir", default=os.path.expanduser("~/.cache/shelfcast/bench/walmart"))
    ap.add_argument("--bin", default=str(BIN), help="the shelfcast binary (default: the release build)")
    ap.add_argument("--covariates-ablation", action="store_true",
                    help="also backtest gbt on the lake without the imported location covariates")
    a = ap.parse_args()
    work = Path(a.dir)
    work.mkdir(parents=True, exist_ok=True)
    lake = work / "lake"
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    base = [a.bin, "--lake", str(lake), "-q", "--frequency", "weekly", "--week-ends-on", "friday", "--horizon", "13"]
    if not (lake / "raw" / "sales").exists():
        subprocess.run(base + ["import", "--preset", "walmart", str(SHARED / "data" / "walmart")], check=True)
    fc, act = work / "shelfcast-forecasts.parquet", work / "actuals.parquet"
    t0 = time.time()
    done = json.loads(subprocess.run(
        base + ["--models", a.models, "backtest", "--windows", "3", "--step", "13", "--export", str(fc),
                "--export-actuals", str(act), "--format", "json"], check=True, capture_output=True, text=True).stdout)
    seconds = time.time() - t0
    # Seconds per model from shelfcast's own report; the published forecast is a choice among them.
    own = {m["model"]: m["seconds"] for m in done["report"]["models"]}
    published = (done["report"].get("published") or {}).get("champions", {})
    if a.covariates_ablation:
        bare = work / "lake-without-covariates"
        if not bare.exists():
            shutil.copytree(lake / "raw", bare / "raw", ignore=lambda d, names: [n for n in names if n == "known_covariates"])
        bare_fc = work / "shelfcast-forecasts-without-covariates.parquet"
        t1 = time.time()
        subprocess.run([a.bin, "--lake", str(bare)] + base[3:] + ["--models", "gbt", "backtest", "--windows", "3",
                                                                     "--step", "13", "--export", str(bare_fc)], check=True)
        print(f"gbt without the location covariates: {time.time() - t1:.0f} s")
    py = peers_python(a.python)
    if a.covariates_ablation:
        both = work / "shelfcast-forecasts-all.parquet"
        subprocess.run([py, "-c", (
            "import pandas as pd, sys; b = pd.read_parquet(sys.argv[2]); b['method'] = 'gbt_without_covariates'; "
            "pd.concat([pd.read_parquet(sys.argv[1]), b]).to_parquet(sys.argv[3])"),
            str(fc), str(bare_fc), str(both)], check=True)
        fc = both
    ours = work / "shelfcast-score.json"
    subprocess.run([py, str(SHARED / "bench" / "score.py"), "--forecasts", str(fc), "--actuals", str(act),
                    "--season", "52", "--json", str(ours)], check=True, capture_output=True)
    if a.no_peers:
        peers_json = SHARED / "bench" / "results" / "walmart-peers.json"
    else:
        data = work / "walmart.parquet"
        subprocess.run([py, "-c", (
            "import pandas as pd, sys; t = pd.read_csv(sys.argv[1]); "
            "t['unique_id'] = t.Store.astype(str) + '_' + t.Dept.astype(str); "
            "n = t.groupby('unique_id').Date.transform('count'); t = t[n == t.Date.nunique()]; "
            "t.rename(columns={'Date': 'ds', 'Weekly_Sales': 'y'})[['unique_id', 'ds', 'y']].to_parquet(sys.argv[2])"),
            str(SHARED / "data" / "walmart" / "train.csv"), str(data)], check=True)
        prefix = work / "peers"
        subprocess.run([py, str(SHARED / "bench" / "forecast_peers.py"), "--input", str(data), "--horizon", "13",
                        "--windows", "3", "--season", "52", "--freq", "W-FRI", "--skip-arima", "--out-prefix", str(prefix)],
                       check=True)
        peers_json = Path(f"{prefix}-peers.json")
    peers = json.loads(peers_json.read_text())["methods"]
    mine = json.loads(ours.read_text())["methods"]
    print(f"Walmart: 2,660 store × department series, weekly, H=13, 3 windows, step 13, season 52; "
          f"shelfcast backtest {seconds:.0f} s for {len(mine)} models; peers from {peers_json.name}")
    print("| system | method | cutoffs | " + " | ".join(METRICS) + " | seconds |")
    print("|---|---|---|" + "---|" * (len(METRICS) + 1))
    for source, table in (("shelfcast", mine), ("peer", peers)):
        for name, r in table.items():
            o = r["overall"]
            cut = ", ".join(r.get("cutoffs", []))
            secs = f"{own[name]:.0f}" if source == "shelfcast" and name in own else "-"
            print(f"| {source} | {name} | {cut} | " + " | ".join(fmt(o.get(m)) for m in METRICS) + f" | {secs} |")
    for cutoff, chosen in published.items():
        print(f"published at {cutoff}: " + ", ".join(f"{segment} {model}" for segment, model in chosen.items()))


if __name__ == "__main__":
    main()
