"""A real Arrow Flight SQL client (ADBC's Flight SQL driver, from PyPI) for the `shelfcast serve`
tests (serve.rs).

Usage: flight_client.py URI [--user U] [--password P] [--root-cert FILE] [--parallel] [--summary]
                        [--prepared] [--objects] [--ready FILE] SQL...

Runs each SQL statement through ADBC's DB-API and prints one JSON object per statement, in order:
  {"columns": [...], "rows": [[...], ...], "seconds": s}     rows as JSON (dates ISO, decimals as numbers)
  {"columns": [...], "count": n, "sum": x, "batches": b, "seconds": s}
                                                             with --summary: the result read batch by
                                                             batch as it streams, never held whole
  {"status": "TIMEOUT", "message": "...", "seconds": s}     when the statement failed (ADBC's status)
  {"connect_error": "..."}                                    when the connection was refused
With --objects one more object comes first: {"tables": [...]}, the tables ADBC's GetObjects lists.
With --ready the file is written once the connection is made (before the first statement).
With --prepared each statement is prepared first (ADBC's `adbc_prepare`), as JDBC clients do.
Statements run one after another on one connection, or with --parallel each on its own, all at
once (without --objects).
"""

import argparse
import datetime
import decimal
import json
import threading
import time

import adbc_driver_flightsql.dbapi as flight_sql
import adbc_driver_manager
import pyarrow.compute as pc


def value(v):
    if isinstance(v, (datetime.date, datetime.datetime, datetime.time)):
        return v.isoformat()
    if isinstance(v, decimal.Decimal):
        return float(v)
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v).hex()
    return v


def connect(args):
    kwargs = {}
    if args.password is not None:
        kwargs["username"] = args.user
        kwargs["password"] = args.password
    if args.root_cert:
        with open(args.root_cert) as f:
            kwargs["adbc.flight.sql.client_option.tls_root_certs"] = f.read()
    return flight_sql.connect(args.uri, db_kwargs=kwargs, autocommit=True)


def failure(e, started):
    status = getattr(e, "status_code", None)
    name = status.name if status is not None else type(e).__name__
    return {"status": name, "message": str(e).strip(), "seconds": time.time() - started}


def run(conn, sql, summary, prepared):
    started = time.time()
    try:
        cur = conn.cursor()
        if prepared:
            cur.adbc_prepare(sql)
        cur.execute(sql)
        if summary:
            reader = cur.fetch_record_batch()
            count, total, batches = 0, 0.0, 0
            for batch in reader:
                batches += 1
                count += batch.num_rows
                if batch.num_rows:
                    total += float(pc.sum(batch.column(0)).as_py() or 0)
            columns = reader.schema.names
            out = {"columns": columns, "count": count, "sum": total, "batches": batches}
        else:
            table = cur.fetch_arrow_table()
            columns = table.column_names
            rows = [[value(v) for v in row.values()] for row in table.to_pylist()]
            out = {"columns": columns, "rows": rows}
        cur.close()
        out["seconds"] = time.time() - started
        return out
    except adbc_driver_manager.Error as e:
        return failure(e, started)


def tables(conn):
    names = []
    for catalog in conn.adbc_get_objects(depth="tables").read_all().to_pylist():
        for schema in catalog["catalog_db_schemas"] or []:
            for table in schema["db_schema_tables"] or []:
                names.append(table["table_name"])
    return sorted(names)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("uri")
    p.add_argument("--user", default="analyst")
    p.add_argument("--password")
    p.add_argument("--root-cert")
    p.add_argument("--parallel", action="store_true")
    p.add_argument("--summary", action="store_true")
    p.add_argument("--prepared", action="store_true")
    p.add_argument("--objects", action="store_true")
    p.add_argument("--ready")
    p.add_argument("sql", nargs="*")
    args = p.parse_intermixed_args()

    def alone(sql, out, index):
        try:
            conn = connect(args)
            out[index] = run(conn, sql, args.summary, args.prepared)
            conn.close()
        except adbc_driver_manager.Error as e:
            out[index] = {"connect_error": str(e)}

    results = [None] * len(args.sql)
    if args.parallel:
        threads = [threading.Thread(target=alone, args=(sql, results, i)) for i, sql in enumerate(args.sql)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    else:
        head = []
        try:
            conn = connect(args)
            if args.ready:
                open(args.ready, "w").close()
            if args.objects:
                head.append({"tables": tables(conn)})
            for i, sql in enumerate(args.sql):
                results[i] = run(conn, sql, args.summary, args.prepared)
            conn.close()
        except adbc_driver_manager.Error as e:
            results = [{"connect_error": str(e)} if r is None else r for r in results]
            if args.objects and not head:
                head.append({"connect_error": str(e)})
        results = head + results
    for r in results:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
