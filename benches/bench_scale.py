#!/usr/bin/env python3
"""Memory at scale: the nightly job on an M5-sized demo lake under a configured memory limit.

1. Generates the demo lake (default 30,000 series x 1,900 days, about 57M series-days) under the
   cache folder with `shelfcast demo`, once, timing it and sampling its memory; a later run reuses
   the lake and reports the generation figures it stored beside it.
2. Runs `shelfcast run nightly` (jobs/nightly.toml: checks, features, train, backtest, predict,
   publish, plan, notify, factors, report) on it with a settings file that sets the SQL memory
   budget (`memory-limit-mb`, default 4096: DataFusion's memory pool, sorts and aggregations
   spill beyond it), the worker threads and the models (default: the statistical baselines
   seasonal_naive, ets, tsb and their ensemble; the deep models take hours per epoch at this size
   on 2 cores).
3. Samples the resident memory (VmRSS of the process and its children, from /proc) every 0.5 s
   in a thread, and maps the samples onto the steps by the start and end times of the run record
   (runs/job=nightly/run_date=.../<run_id>.json).

Prints, and writes to benches/results/scale.md (--out), a table step | seconds | peak RSS MiB |
rows in | rows out, with rows/s of the features step, the total, the overall peak and the limit.

With --nights N (N >= 2) the nightly runs N days in a row on a fresh copy of the lake (raw tables
only), the first with nothing stored (a cold run: backtest, deep models from scratch), the later
ones warm (models continued, backtest kept), and a table gives each night's seconds.
`--series 200 --days 1095 --nights 2 --models seasonal_naive,ets,theta,tsb,gbt,lstm,transformer,ensemble`
measures the demo's cold and warm nights.

Usage: python3 benches/bench_scale.py [--series 30000] [--days 1900] [--memory-limit-mb 4096]
       [--threads 0] [--models seasonal_naive,ets,tsb,ensemble] [--bin target/release/shelfcast]
       [--dir ~/.cache/shelfcast/bench/scale] [--out benches/results/scale.md] [--nice 10]
       [--champion-windows N]
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

from benchlib import BIN, ROOT, fresh_lake
RUN_DATE = "2026-07-01"
END = "2026-06-30"


def rss_kib(pid: int) -> int:
    """VmRSS of pid and of every descendant, in KiB (0 for a process that is gone)."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
                    break
        except OSError:
            continue
        try:
            for tid in os.listdir(f"/proc/{p}/task"):
                kids = Path(f"/proc/{p}/task/{tid}/children").read_text().split()
                todo.extend(int(k) for k in kids)
        except OSError:
            pass
    return total


def sampled(cmd: list[str], log: Path, every: float = 0.5) -> tuple[int, float, list[tuple[float, int]], int]:
    """Runs cmd, sampling its RSS every `every` s; returns (exit code, wall s, [(unix time, KiB)],
    the kernel's peak RSS of the process in KiB, which also catches a peak between samples)."""
    samples: list[tuple[float, int]] = []
    t0 = time.time()
    # The samples also go to <log>.rss as they are taken, to follow a long run (or one that was killed).
    with open(log, "w") as out, open(log.with_suffix(".rss"), "w") as trace:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        done = threading.Event()

        def probe() -> None:
            while not done.is_set():
                samples.append((time.time(), rss_kib(proc.pid)))
                trace.write(f"{samples[-1][0]:.1f}\t{samples[-1][1]}\n")
                trace.flush()
                done.wait(every)

        th = threading.Thread(target=probe, daemon=True)
        th.start()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = rc = os.waitstatus_to_exitcode(status)
        done.set()
        th.join()
    return rc, time.time() - t0, samples, usage.ru_maxrss


def ts(s: str) -> float:
    """RFC 3339 with nanoseconds to unix seconds."""
    s = s.rstrip("Z")
    frac = 0.0
    if "." in s:
        s, f = s.split(".")
        frac = float("0." + f)
    return dt.datetime.fromisoformat(s).replace(tzinfo=dt.timezone.utc).timestamp() + frac


def mib(kib: int) -> str:
    return f"{kib / 1024:,.0f}"


def write_section(out: Path, key: str, table: str) -> None:
    """Puts `table` (a `## key …` section) into `out`, replacing the section of the same key and
    keeping the text before the first section and every other section (notes, findings)."""
    old = out.read_text() if out.exists() else "# Memory at scale (`make bench-scale`)\n"
    pre, *secs = old.split("\n## ")
    kept = ["## " + x.rstrip() for x in secs if not x.startswith(key)]
    out.write_text(pre.rstrip() + "\n\n" + "\n\n".join([*kept, table]) + "\n")



def nightly_table(label: str, record: dict, rc: int, wall: float, smp: list, kpeak: int, series_days: int) -> list[str]:
    """A night's lines: its status, then seconds, peak RSS and rows per step."""
    rows = []
    for st in record["steps"]:
        if not st.get("started_at") or not st.get("ended_at"):
            rows.append((st["name"], st["status"], None, 0, st.get("rows_in"), st.get("rows_out")))
            continue
        s, e = ts(st["started_at"]), ts(st["ended_at"])
        # The sample just before the step started counts too: a short step may fall between samples.
        inside = [k for t, k in smp if s <= t <= e] + [k for t, k in smp if t < s][-1:]
        rows.append((st["name"], st["status"], e - s, max(inside, default=0), st.get("rows_in"), st.get("rows_out")))
    peak = max([kpeak, *(k for _, k in smp)])

    def n(v) -> str:
        return "-" if v is None else f"{v:,}"

    lines = [
        "",
        f"- {label}nightly: {record['status']} (exit {rc}) in {wall:,.0f} s, overall peak RSS {mib(peak)} MiB; "
        f"run {record['run_id']}",
        "",
        "| step | status | seconds | peak RSS MiB | rows in | rows out |",
        "|---|---|---|---|---|---|",
    ]
    for name, status, secs, k, ri, ro in rows:
        lines.append(f"| {name} | {status} | {'-' if secs is None else f'{secs:,.1f}'} | {mib(k) if k else '-'} "
                     f"| {n(ri)} | {n(ro)} |")
    lines.append(f"| **total** | {record['status']} | {wall:,.1f} | {mib(peak)} | | |")
    feat = next((r for r in rows if r[0] == "features"), None)
    if feat and feat[2] and feat[5]:
        lines += ["", f"features: {feat[5] / feat[2]:,.0f} rows written/s ({series_days / feat[2]:,.0f} "
                      f"series-days/s)"]
    return lines

def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--series", type=int, default=30000)
    ap.add_argument("--days", type=int, default=1900)
    ap.add_argument("--memory-limit-mb", type=int, default=4096)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--models", default="seasonal_naive,ets,tsb,ensemble")
    ap.add_argument("--bin", default=str(BIN))
    ap.add_argument("--dir", default=os.path.expanduser("~/.cache/shelfcast/bench/scale"))
    ap.add_argument("--out", default=str(ROOT / "benches" / "results" / "scale.md"))
    ap.add_argument("--nice", type=int, default=10, help="niceness of the shelfcast processes")
    ap.add_argument("--nights", type=int, default=1,
                    help="nights in a row on a fresh copy of the lake (the first cold, the later ones warm), "
                         "ending on the usual run date")
    ap.add_argument("--sql-option", action="append", default=None, metavar="KEY=VALUE",
                    help="a DataFusion option under [sql-options] (repeatable); default: "
                         "optimizer.prefer_hash_join=false (sort-merge joins, which spill: the hash joins of "
                         "the target features hold 4+ GiB at 30,000 series); --sql-option none for none")
    ap.add_argument("--lease-ttl", default="",
                    help="run a copy of jobs/nightly.toml with this lease-ttl (e.g. 30m); default: the file as it is")
    ap.add_argument("--champion-windows", type=int, default=None,
                    help="[champion] windows, the backtest's scored windows (default: the settings' default, 2); "
                         "a warm night keeps the cold night's backtest, so fewer windows shorten only the cold one")
    a = ap.parse_args()
    if a.sql_option is None:
        a.sql_option = ["optimizer.prefer_hash_join=false"]
    a.sql_option = [o for o in a.sql_option if o != "none"]
    if not Path(a.bin).exists():
        sys.exit(f"no binary at {a.bin} (make build, or --bin PATH)")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    work = Path(a.dir)
    work.mkdir(parents=True, exist_ok=True)
    lake = work / f"lake-{a.series}x{a.days}"
    settings = work / f"settings-{a.series}x{a.days}.toml"
    models = [m for m in a.models.split(",") if m]
    jobs = ROOT / "jobs"
    if a.lease_ttl:
        # A step that holds both tokio workers for longer than the TTL starves the lease renewal
        # and the run is cancelled ("the lease was lost"); see benches/results/scale.md.
        jobs = work / "jobs"
        jobs.mkdir(exist_ok=True)
        spec = (ROOT / "jobs" / "nightly.toml").read_text()
        spec = re.sub(r'(?m)^lease-ttl = .*$', f'lease-ttl = "{a.lease_ttl}"', spec)
        if f'lease-ttl = "{a.lease_ttl}"' not in spec:
            spec = spec.replace("\n[[steps]]", f'\nlease-ttl = "{a.lease_ttl}"\n\n[[steps]]', 1)
        (jobs / "nightly.toml").write_text(spec)
    settings.write_text(
        f"memory-limit-mb = {a.memory_limit_mb}\n"
        f"threads = {a.threads}\n"
        f"models = {json.dumps(models)}\n"
        f'jobs-dir = "{jobs}"\n'
        + ("\n[sql-options]\n" + "".join(f'"{k}" = "{v}"\n' for k, v in (o.split("=", 1) for o in a.sql_option))
           if a.sql_option else "")
        + (f"\n[champion]\nwindows = {a.champion_windows}\n" if a.champion_windows is not None else "")
    )
    nice = ["nice", "-n", str(a.nice)] if a.nice else []
    base = [*nice, a.bin, "-c", str(settings), "--lake", str(lake), "-q"]

    # 1. The lake, once.
    gen_file = work / f"generate-{a.series}x{a.days}.json"
    if (lake / "raw" / "sales").exists() and gen_file.exists():
        gen = json.loads(gen_file.read_text())
        print(f"reusing {lake} (generated in {gen['seconds']:.0f} s, peak {gen['peak_mib']:,.0f} MiB)", flush=True)
    else:
        print(f"generating {a.series} series x {a.days} days into {lake} ...", flush=True)
        rc, wall, smp, kpeak = sampled(base + ["demo", "--force", "--series", str(a.series), "--days", str(a.days),
                                               "--end", END], work / f"generate-{a.series}x{a.days}.log")
        if rc != 0:
            sys.exit(f"demo failed ({rc}); see {work}/generate-{a.series}x{a.days}.log")
        size = sum(f.stat().st_size for f in (lake / "raw").rglob("*") if f.is_file())
        gen = {"seconds": wall, "peak_mib": max([kpeak, *(k for _, k in smp)]) / 1024, "raw_bytes": size}
        gen_file.write_text(json.dumps(gen))
    gen.setdefault("raw_bytes", sum(f.stat().st_size for f in (lake / "raw").rglob("*") if f.is_file()))

    # 2. The nightly job, sampled: once, or night after night on a fresh copy of the lake.
    cores = os.cpu_count()
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    cmd = " ".join(["python3", "benches/bench_scale.py", *sys.argv[1:]])
    lines = [
        f"## {a.series:,} series x {a.days:,} days ({a.series * a.days:,} series-days)"
        + (f", {a.nights} nights" if a.nights > 1 else ""),
        "",
        f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.node() or 'host'}: {cores} cores, "
        f"{mem_gib:.0f} GiB memory, {platform.system()} {platform.release()}; `{cmd}`",
        "",
        f"- memory-limit-mb = {a.memory_limit_mb} (SQL memory pool, spill beyond), threads = {a.threads}, "
        f"models = {','.join(models)}, nice {a.nice}, "
        f"lease-ttl {a.lease_ttl or 'as in jobs/nightly.toml (2m)'}, "
        f"sql-options {', '.join(a.sql_option) or 'none'}, "
        f"backtest windows {a.champion_windows if a.champion_windows is not None else 'as in the settings (2)'}",
        f"- demo lake: generated in {gen['seconds']:.0f} s, peak {gen['peak_mib']:,.0f} MiB, "
        f"raw tables {gen['raw_bytes'] / 2**20:,.0f} MiB",
    ]
    if a.nights > 1:
        # The first night finds no stored model (a cold run); the later ones one day more each.
        fresh = fresh_lake(lake, work / f"nights-{a.series}x{a.days}")
        lake = fresh
        base = [*nice, a.bin, "-c", str(settings), "--lake", str(lake), "-q"]
    run_day = dt.date.fromisoformat(RUN_DATE)
    dates = [(run_day - dt.timedelta(days=a.nights - 1 - i)).isoformat() for i in range(a.nights)]
    totals = []
    failed = 0
    for night, date in enumerate(dates, 1):
        label = "" if a.nights == 1 else f"night {night} ({'cold' if night == 1 else 'warm'}) "
        print(f"{label}nightly on {lake} for {date}: memory-limit-mb = {a.memory_limit_mb}, "
              f"models {','.join(models)} ...", flush=True)
        runs_dir = lake / "runs" / "job=nightly" / f"run_date={date}"
        before = set(runs_dir.glob("*.json")) if runs_dir.exists() else set()
        log = work / f"nightly-{a.series}x{a.days}-{date}.log"
        rc, wall, smp, kpeak = sampled(base + ["run", "nightly", "--date", date], log)
        new = sorted(set(runs_dir.glob("*.json")) - before, key=lambda p: p.stat().st_mtime) if runs_dir.exists() else []
        if not new:
            sys.exit(f"nightly wrote no run record (exit {rc}); see {log}")
        record = json.loads(new[-1].read_text())
        failed = failed or rc
        totals.append((label.strip() or "nightly", wall))
        lines += nightly_table(label, record, rc, wall, smp, kpeak, a.series * a.days)
    if a.nights > 1:
        lines += ["", "| night | seconds | minutes |", "|---|---|---|"]
        lines += [f"| {name} | {secs:,.1f} | {secs / 60:.1f} |" for name, secs in totals]
    rc = failed
    table = "\n".join(lines)
    print(table)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_section(out, f"{a.series:,} series x {a.days:,} days" + (f", {a.nights} nights" if a.nights > 1 else ""), table)
    print(f"wrote {out}")
    if rc != 0:
        sys.exit(rc)


if __name__ == "__main__":
    main()
