#!/usr/bin/env python3
"""SQL feature benchmark driver: shelfcast vs DuckDB on the peers' features.sql.

Run by scripts/bench_sql.sh with the peers' Python (shared/bench/setup.sh). For each size it
generates the fact table once (the peers' generator, cached), then runs each engine in a fresh
process per repetition, alternating engines so background load hits both alike:
  duckdb:    exactly as sql_features_peer.py runs it (its --engine-worker subprocess)
  shelfcast: the benches/sql_features binary (--bin)
It checks shelfcast's output against DuckDB's with the peers' compare, prints a table and
writes <results>/sql-features.json and .md. Exit status 1 if an output does not match.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

PEER_DIR = Path(os.environ.get("PEER_BENCH_DIR", Path(__file__).resolve().parents[2] / "shared/bench"))
sys.path.insert(0, str(PEER_DIR))
import sql_features_peer as peer  # noqa: E402


def ensure_input(rows: int, data_dir: Path) -> Path:
    """The peers' fact table with `rows` rows (seed 42), generated once into data_dir."""
    path = data_dir / f"sales_{rows}_s42.parquet"
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        t0 = time.perf_counter()
        peer.generate(rows, str(tmp))
        os.replace(tmp, path)
        print(f"generated {path} in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    return path


def run_duckdb(inp: Path, out: Path, threads: int | None) -> dict:
    cmd = [sys.executable, peer.__file__, "--engine-worker", "duckdb", str(inp), str(out)]
    if threads:
        cmd += ["--threads", str(threads)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"duckdb failed:\n{r.stderr}")
    line = [ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


def run_shelfcast(binary: str, inp: Path, out: Path, threads: int | None, extra: list[str]) -> dict:
    cmd = [binary, "--input", str(inp), "--sql", str(peer.SQL_PATH), "--output", str(out)]
    if threads:
        cmd += ["--threads", str(threads)]
    r = subprocess.run(cmd + extra, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"shelfcast failed:\n{r.stderr}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def summarize(runs: list[dict], rows: int) -> dict:
    walls = [r["wall_s"] for r in runs]
    return {"wall_s_median": statistics.median(walls), "wall_s_min": min(walls), "wall_s_all": walls,
            "cpu_s_median": statistics.median(r["cpu_s"] for r in runs),
            "peak_rss_mb_max": max(r["peak_rss_mb"] for r in runs),
            "rows_per_s_at_median": rows / statistics.median(walls), "threads": runs[0].get("threads")}


def bench_size(rows: int, a, data_dir: Path) -> dict:
    inp = ensure_input(rows, data_dir)
    outs = {e: data_dir / f"features_{e}_{rows}.parquet" for e in ("duckdb", "shelfcast")}
    runs: dict[str, list] = {"duckdb": [], "shelfcast": []}
    for rep in range(a.repeat):
        for engine, out in outs.items():
            out.unlink(missing_ok=True)
            load = os.getloadavg()[0]
            r = (run_duckdb(inp, out, a.threads) if engine == "duckdb"
                 else run_shelfcast(a.bin, inp, out, a.threads, a.shelfcast_arg))
            r["loadavg_1m_before"] = load
            runs[engine].append(r)
            print(f"{rows:>10,} rep {rep} {engine:9}: {r['wall_s']:.2f}s wall, {r['cpu_s']:.1f}s cpu, "
                  f"{r['peak_rss_mb']:.0f} MB peak, load {load:.1f}", file=sys.stderr)
    summary = {e: summarize(rs, rows) for e, rs in runs.items()}
    check = peer.compare(str(outs["duckdb"]), str(outs["shelfcast"]))
    d, s = summary["duckdb"], summary["shelfcast"]
    return {"rows": rows, "input": str(inp), "engines": summary, "runs": runs, "output_check": check,
            "ratio_wall": s["wall_s_median"] / d["wall_s_median"],
            "ratio_peak_rss": s["peak_rss_mb_max"] / d["peak_rss_mb_max"]}


def markdown(doc: dict) -> str:
    m = doc["meta"]
    lines = ["# SQL features: shelfcast vs DuckDB", "",
             f"`features.sql` (shared/bench), read Parquet + compute + write Parquet (zstd); median of "
             f"{m['repeat']} fresh-process runs per engine, engines alternating. Machine: {m['cpus']} CPUs, "
             f"load average before the runs {m['loadavg_before']:.1f}. Versions: "
             + ", ".join(f"{k} {v}" for k, v in m["versions"].items()) + ".", "",
             "shelfcast: `benches/sql_features.rs`, input sort order declared, DataFusion settings "
             + ", ".join(f"`{s}`" for s in doc["sizes"][0]["runs"]["shelfcast"][0]["settings"])
             + (f", flags {' '.join(m['shelfcast_args'])}" if m["shelfcast_args"] else "") + ".", "",
             "| engine | rows | wall s | rows/s | CPU s | peak RSS MB | wall vs DuckDB | peak RSS vs DuckDB | output matches |",
             "|---|---|---|---|---|---|---|---|---|"]
    for size in doc["sizes"]:
        for e in ("duckdb", "shelfcast"):
            s = size["engines"][e]
            ratios = (f"{size['ratio_wall']:.2f}x | {size['ratio_peak_rss']:.2f}x | "
                      f"{size['output_check']['identical']}") if e == "shelfcast" else "1.00x | 1.00x | (reference)"
            lines.append(f"| {e} | {size['rows']:,} | {s['wall_s_median']:.2f} | {s['rows_per_s_at_median']:,.0f} | "
                         f"{s['cpu_s_median']:.1f} | {s['peak_rss_mb_max']:.0f} | {ratios} |")
    lines.append("")
    for size in doc["sizes"]:
        c = size["output_check"]
        lines.append(f"- {size['rows']:,} rows: all wall s duckdb "
                     + ", ".join(f"{w:.2f}" for w in size["engines"]["duckdb"]["wall_s_all"])
                     + "; shelfcast " + ", ".join(f"{w:.2f}" for w in size["engines"]["shelfcast"]["wall_s_all"])
                     + f"; output check: rows {c['rows_a']} vs {c['rows_b']}, unmatched {c['unmatched']}, "
                     f"columns beyond 1e-9 {c['mismatched_columns'] or '{}'}, largest float difference "
                     f"{max(c['max_abs_diff'].values()):.1e}, NaN {c['nan_counts_a'] or '{}'} vs {c['nan_counts_b'] or '{}'}")
    return "\n".join(lines) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bin", required=True, help="the built sql_features bench binary")
    p.add_argument("--rows", default="1000000,10000000", help="comma-separated table sizes")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--threads", type=int, default=None, help="both engines (default: all cores)")
    p.add_argument("--data-dir", default=os.path.expanduser("~/.cache/shelfcast/bench"))
    p.add_argument("--results", default=str(Path(__file__).resolve().parent / "results"))
    p.add_argument("--shelfcast-arg", action="append", default=[], help="extra flag for the binary, e.g. --shelfcast-arg=--datafusion-windows")
    a = p.parse_args()
    data_dir = Path(a.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    meta = {"repeat": a.repeat, "threads": a.threads, "cpus": os.cpu_count(), "platform": platform.platform(),
            "loadavg_before": os.getloadavg()[0], "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "versions": peer.versions(), "shelfcast_args": a.shelfcast_arg}
    sizes = [bench_size(int(n), a, data_dir) for n in a.rows.split(",")]
    doc = {"meta": meta, "sizes": sizes}
    results = Path(a.results)
    results.mkdir(parents=True, exist_ok=True)
    (results / "sql-features.json").write_text(json.dumps(doc, indent=2) + "\n")
    md = markdown(doc)
    (results / "sql-features.md").write_text(md)
    print(md)
    mismatched = [s["rows"] for s in sizes if not s["output_check"]["identical"]]
    if mismatched:
        print(f"shelfcast's output differs from DuckDB's at {mismatched} rows (see the output check)",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
