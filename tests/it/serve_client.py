"""A real PostgreSQL client (psycopg 3, from PyPI) for the `shelfcast serve` tests (serve.rs).

Usage: serve_client.py PORT [--user U] [--password P] [--sslmode M] [--parallel] [--summary]
                         [--named] [--sqlalchemy] [--ready FILE] SQL...

Runs each SQL statement and prints one JSON object per statement, in the order given:
  {"columns": [...], "rows": [[...], ...], "seconds": s}     rows as JSON (dates ISO, decimals as numbers)
  {"columns": [...], "count": n, "sum": x, "seconds": s}     with --summary: row count, sum of column 1
  {"sqlstate": "57014", "message": "...", "seconds": s}      when the statement failed
  {"connect_error": "..."}                                    when the connection was refused
With --sqlalchemy each statement is read by pandas.read_sql through a SQLAlchemy engine (the
psycopg dialect), as notebooks do. Statements run one after another on one connection, or with --parallel each on a connection of
its own, all at once. With --summary the rows are read one at a time as they stream (psycopg's
single-row mode, or with --named a server-side cursor fetching 10,000 rows at a time), never
held whole. With --ready the file is written once the connection is made (before the first
statement; not with --parallel or --sqlalchemy).
"""

import argparse
import datetime
import decimal
import json
import sys
import threading
import time

import psycopg


def value(v):
    if isinstance(v, (datetime.date, datetime.datetime, datetime.time)):
        return v.isoformat()
    if isinstance(v, decimal.Decimal):
        return float(v)
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v).hex()
    return v


def connect(args):
    kw = dict(host="127.0.0.1", port=args.port, user=args.user, dbname="shelfcast", autocommit=True, connect_timeout=10)
    if args.password is not None:
        kw["password"] = args.password
    if args.sslmode:
        kw["sslmode"] = args.sslmode
    return psycopg.connect(**kw)


def rows_of(conn, sql, named):
    """The rows of `sql`, read as they stream: single-row mode, or a named (server-side) cursor."""
    if not named:
        cur = conn.cursor()
        for row in cur.stream(sql):
            yield cur, row
        return
    with conn.transaction():
        with conn.cursor(name="shelfcast_test") as cur:
            cur.itersize = 10_000
            cur.execute(sql)
            for row in cur:
                yield cur, row


def run(conn, sql, summary, named=False):
    started = time.time()
    try:
        if summary:
            count, total, columns = 0, 0.0, None
            for cur, row in rows_of(conn, sql, named):
                if columns is None:
                    columns = [d.name for d in cur.description]
                count += 1
                total += float(row[0] or 0)
            return {"columns": columns or [], "count": count, "sum": total, "seconds": time.time() - started}
        cur = conn.execute(sql)
        columns = [d.name for d in cur.description] if cur.description else []
        rows = [[value(v) for v in r] for r in cur.fetchall()] if cur.description else []
        return {"columns": columns, "rows": rows, "seconds": time.time() - started}
    except psycopg.Error as e:
        return {"sqlstate": e.sqlstate, "message": str(e).strip(), "seconds": time.time() - started}


def through_sqlalchemy(args, sqls):
    import pandas as pd
    import sqlalchemy

    engine = sqlalchemy.create_engine(f"postgresql+psycopg://{args.user}@127.0.0.1:{args.port}/shelfcast")
    out = []
    for sql in sqls:
        started = time.time()
        df = pd.read_sql(sqlalchemy.text(sql), engine)
        rows = [[None if pd.isna(v) else value(v.to_pydatetime() if hasattr(v, "to_pydatetime") else v)
                 for v in r] for r in df.itertuples(index=False)]
        rows = [[v.item() if hasattr(v, "item") else v for v in r] for r in rows]
        out.append({"columns": list(df.columns), "rows": rows, "seconds": time.time() - started})
    engine.dispose()
    return out


def on_own_connection(args, sql, out, i):
    try:
        with connect(args) as conn:
            out[i] = run(conn, sql, args.summary)
    except psycopg.OperationalError as e:
        out[i] = {"connect_error": str(e).strip()}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("port", type=int)
    p.add_argument("--user", default="analyst")
    p.add_argument("--password")
    p.add_argument("--sslmode")
    p.add_argument("--parallel", action="store_true")
    p.add_argument("--summary", action="store_true")
    p.add_argument("--sqlalchemy", action="store_true")
    p.add_argument("--named", action="store_true")
    p.add_argument("--ready")
    p.add_argument("sql", nargs="+")
    args = p.parse_args()
    out = [None] * len(args.sql)
    if args.sqlalchemy:
        out = through_sqlalchemy(args, args.sql)
    elif args.parallel:
        threads = [threading.Thread(target=on_own_connection, args=(args, s, out, i)) for i, s in enumerate(args.sql)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    else:
        try:
            with connect(args) as conn:
                if args.ready:
                    open(args.ready, "w").close()
                for i, s in enumerate(args.sql):
                    out[i] = run(conn, s, args.summary, args.named)
        except psycopg.OperationalError as e:
            out = [{"connect_error": str(e).strip()}]
    for o in out:
        print(json.dumps(o))


if __name__ == "__main__":
    sys.exit(main())
