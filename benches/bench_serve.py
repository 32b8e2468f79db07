"""`shelfcast serve` throughput: a 10M-row result streamed to psycopg (PostgreSQL wire) and to ADBC
(Flight SQL), next to DuckDB reading the same Parquet files directly, in the same run on the same
machine.

Makes a small demo lake, adds one Parquet file of `--rows` sales rows (the `sales` schema, random
values, seeded), starts the release `shelfcast serve` on free loopback ports, then times:

  serve → psycopg   SELECT * FROM sales, rows read one at a time as they stream (single-row mode)
  serve → psycopg   the same through psql-style text batches (fetchmany of 100,000 rows)
  serve → ADBC      the same over Flight SQL with ADBC's driver, read as Arrow batches as they stream
  DuckDB → Python   the same query over the same files, fetchmany of 100,000 rows (the peer)
  DuckDB → Arrow    the same, fetched as Arrow batches (columnar; no per-row conversion)

and prints rows/s and the ratio of each shelfcast path to each peer. Results go to benches/results/serve.{json,md}.

Usage: python3 benches/bench_serve.py [--rows 10000000] [--dir DIR] [--python PY]
PY needs duckdb, pyarrow, psycopg and adbc-driver-flightsql (default: the peers' venv from
../shared/bench/setup.sh, given psycopg and the ADBC driver here when it lacks them).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from benchlib import BIN, ROOT, SHARED

WORKER = r'''
import json, sys, time
mode, arg, rows = sys.argv[1], sys.argv[2], int(sys.argv[3])
sql = "SELECT * FROM sales"
t = time.time(); n = 0
if mode == "psycopg-stream":
    import psycopg
    with psycopg.connect(host="127.0.0.1", port=int(arg), user="bench", dbname="shelfcast", autocommit=True) as c:
        cur = c.cursor()
        for _ in cur.stream(sql):
            n += 1
elif mode == "psycopg-batches":
    import psycopg
    with psycopg.connect(host="127.0.0.1", port=int(arg), user="bench", dbname="shelfcast", autocommit=True) as c:
        cur = c.cursor()
        cur.execute(sql)
        while True:
            b = cur.fetchmany(100_000)
            if not b:
                break
            n += len(b)
elif mode == "adbc-flight":
    import adbc_driver_flightsql.dbapi as flight_sql
    with flight_sql.connect(arg, autocommit=True) as c:
        cur = c.cursor()
        cur.execute(sql)
        for b in cur.fetch_record_batch():
            n += b.num_rows
elif mode == "duckdb-rows":
    import duckdb
    con = duckdb.connect()
    con.execute(f"CREATE VIEW sales AS SELECT * FROM read_parquet('{arg}/*.parquet', union_by_name=true)")
    cur = con.execute(sql)
    while True:
        b = cur.fetchmany(100_000)
        if not b:
            break
        n += len(b)
elif mode == "duckdb-arrow":
    import duckdb
    con = duckdb.connect()
    con.execute(f"CREATE VIEW sales AS SELECT * FROM read_parquet('{arg}/*.parquet', union_by_name=true)")
    reader = con.execute(sql).to_arrow_reader(100_000)
    for b in reader:
        n += b.num_rows
print(json.dumps({"rows": n, "seconds": time.time() - t}))
'''


def peers_python(given: str | None) -> str:
    py = given or subprocess.run(
        ["bash", str(SHARED / "bench" / "setup.sh")], capture_output=True, text=True, check=True
    ).stdout.strip().splitlines()[-1]
    if subprocess.run([py, "-c", "import psycopg, adbc_driver_flightsql"], capture_output=True).returncode != 0:
        subprocess.run(
            [py, "-m", "pip", "install", "-q", "psycopg[binary]>=3.1,<4", "adbc-driver-flightsql>=1.1,<2"], check=True
        )
    return py


def make_lake(py: str, lake: Path, rows: int) -> Path:
    env = dict(os.environ, SHELFCAST_LAKE=str(lake))
    subprocess.run([str(BIN), "demo", "--series", "4", "--days", "60"], check=True, env=env, stdout=subprocess.DEVNULL)
    sales = lake / "raw" / "sales"
    script = f'''
import glob, numpy as np, pyarrow as pa, pyarrow.parquet as pq
schema = pq.read_schema(sorted(glob.glob("{sales}/*.parquet"))[0])
rng = np.random.default_rng(7); n = {rows}; chunk = 1_000_000
with pq.ParquetWriter("{sales}/bench.parquet", schema) as w:
    for start in range(0, n, chunk):
        m = min(chunk, n - start); cols = []
        for f in schema:
            if pa.types.is_date(f.type):
                cols.append(pa.array(rng.integers(19000, 20500, m).astype("int32"), pa.int32()).cast(f.type))
            elif pa.types.is_string(f.type) or pa.types.is_large_string(f.type):
                cols.append(pa.array([f"{{f.name}}_{{i % 5000:05d}}" for i in rng.integers(0, 5000, m)], f.type))
            elif pa.types.is_floating(f.type):
                cols.append(pa.array(rng.poisson(3.0, m).astype("float64")).cast(f.type))
            elif pa.types.is_integer(f.type):
                cols.append(pa.array(rng.integers(0, 100, m)).cast(f.type))
            elif pa.types.is_boolean(f.type):
                cols.append(pa.array(rng.random(m) < 0.1))
            else:
                cols.append(pa.nulls(m, f.type))
        w.write_table(pa.Table.from_arrays(cols, schema=schema))
'''
    subprocess.run([py, "-c", script], check=True)
    return sales


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def run(py: str, mode: str, arg: str, rows: int) -> dict:
    out = subprocess.run([py, "-c", WORKER, mode, arg, str(rows)], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"{mode} failed: {out.stderr}")
    r = json.loads(out.stdout.strip().splitlines()[-1])
    if r["rows"] < rows:
        sys.exit(f"{mode} read {r['rows']} rows, expected at least {rows}")
    r["rows_per_s"] = r["rows"] / r["seconds"]
    return r


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--dir", default=os.path.expanduser("~/.cache/shelfcast/bench/serve"))
    ap.add_argument("--python")
    args = ap.parse_args()
    if not BIN.exists():
        sys.exit(f"no release binary at {BIN}: run `make build`")
    py = peers_python(args.python)
    work = Path(args.dir)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    lake = work / "lake"
    sales = make_lake(py, lake, args.rows)
    port, flight = free_port(), free_port()
    log = work / "serve.log"
    server = subprocess.Popen(
        [str(BIN), "--lake", str(lake), "serve", "--listen", f"127.0.0.1:{port}",
         "--flight-listen", f"127.0.0.1:{flight}"],
        stderr=log.open("w"), env=dict(os.environ, SHELFCAST_SERVE_PASSWORD=""),
    )
    try:
        deadline = time.time() + 120
        while "Flight SQL on" not in log.read_text():
            if server.poll() is not None or time.time() > deadline:
                sys.exit(f"shelfcast serve did not start: {log.read_text()}")
            time.sleep(0.2)
        results = {}
        for mode, arg in [
            ("psycopg-stream", str(port)),
            ("psycopg-batches", str(port)),
            ("adbc-flight", f"grpc://127.0.0.1:{flight}"),
            ("duckdb-rows", str(sales)),
            ("duckdb-arrow", str(sales)),
        ]:
            results[mode] = run(py, mode, arg, args.rows)
            print(f"{mode:16} {results[mode]['rows']:>11,} rows  {results[mode]['seconds']:7.2f} s  "
                  f"{results[mode]['rows_per_s']:>12,.0f} rows/s", flush=True)
    finally:
        server.terminate()
        server.wait(timeout=60)
    paths = {
        "psycopg (best path)": max(results["psycopg-stream"]["rows_per_s"], results["psycopg-batches"]["rows_per_s"]),
        "ADBC Flight SQL": results["adbc-flight"]["rows_per_s"],
    }
    ratios = {
        f"{path} / {peer}": speed / results[peer]["rows_per_s"]
        for path, speed in paths.items()
        for peer in ["duckdb-rows", "duckdb-arrow"]
    }
    for name, r in ratios.items():
        print(f"shelfcast serve → {name}: {r:.2f}× the rows per second")
    out = ROOT / "benches" / "results"
    out.mkdir(parents=True, exist_ok=True)
    report = {"rows": args.rows, "results": results, "ratios": ratios, "cores": os.cpu_count()}
    (out / "serve.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = ["| path | rows | seconds | rows/s |", "|---|---:|---:|---:|"]
    for mode, r in results.items():
        lines.append(f"| {mode} | {r['rows']:,} | {r['seconds']:.2f} | {r['rows_per_s']:,.0f} |")
    lines += ["", *(f"shelfcast serve → {name}: **{r:.2f}×**" for name, r in ratios.items())]
    (out / "serve.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
