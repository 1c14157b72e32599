#!/usr/bin/env python3
"""Runs the signals job's Athena statement in DuckDB over an archive on disk.

Athena cannot run outside AWS, so the statement the indexer sends it
(`shared/recs/src/signals_sql.rs`) is checked by running the very same text here, over
the same archive files, and comparing the tallies with the Rust implementation's
(the tests in that file). DuckDB reads the archive as Athena's Glue table does:

- a table with the event contract's columns, every line of `events/dt=YYYY-MM-DD/*.jsonl`
  a row, `dt` the partition's date as text, `"$path"` the object's path;
- a line that is not JSON is a row of NULLs (the JSON SerDe's `ignore.malformed.json`).

DuckDB names three of the Trino functions the statement uses differently; they are
defined here as macros with Trino's meaning (`try`, `date_diff`, `pow`, `least`,
`coalesce`, `row_number`, `lag` are the same in both).

The result is written as Athena writes a query result: CSV, a header row, every value
quoted, NULL as an empty field.

    duckdb_signals.py --archive DIR --sql FILE --table NAME --out FILE.csv
"""

import argparse
import pathlib
import resource
import sys
import time

import duckdb

# The Glue table's columns (infra/template.yaml, EventsTable), all text but the numbers.
COLUMNS = {
    "event_id": "VARCHAR",
    "user_id": "VARCHAR",
    "anonymous_id": "VARCHAR",
    "type": "VARCHAR",
    "item_id": "VARCHAR",
    "query": "VARCHAR",
    "timestamp": "VARCHAR",
    "value": "DOUBLE",
    "session_id": "VARCHAR",
    "category": "VARCHAR",
    "brand": "VARCHAR",
    "price": "DOUBLE",
}

# Trino's functions, in DuckDB. from_iso8601_timestamp fails on text that is not a time,
# as Trino's does (the statement wraps it in try).
TRINO_MACROS = [
    "CREATE MACRO from_iso8601_timestamp(s) AS CAST(s AS TIMESTAMPTZ)",
    "CREATE MACRO to_unixtime(t) AS epoch(t)",
    "CREATE MACRO regexp_like(s, pattern) AS regexp_matches(s, pattern)",
]


def table_sql(archive: pathlib.Path, table: str) -> str:
    pattern = str(archive / "events" / "dt=*" / "*.jsonl").replace("'", "''")
    # Lines that are not JSON become NULL rows: read each line as text, then parse it; a
    # field that is not of its column's type reads as NULL rather than failing the query.
    fields = ", ".join(
        f"""TRY_CAST(json_extract_string(j, '$."{name}"') AS {kind}) AS "{name}\""""
        for name, kind in COLUMNS.items()
    )
    quoted_name = ".".join(f'"{part}"' for part in table.split("."))
    schema = f'CREATE SCHEMA IF NOT EXISTS "{table.split(".")[0]}";' if "." in table else ""
    return f"""{schema}
CREATE VIEW {quoted_name} AS
SELECT {fields}, dt, filename AS "$path"
FROM (
  SELECT CASE WHEN json_valid(line) AND json_type(line) = 'OBJECT' THEN line::JSON END AS j,
         dt, filename
  FROM read_csv('{pattern}', columns = {{'line': 'VARCHAR'}}, header = false, delim = '\\0',
                quote = '', escape = '', auto_detect = false, filename = true,
                hive_partitioning = true, hive_types = {{'dt': 'VARCHAR'}})
  WHERE line IS NOT NULL AND line <> ''
) lines
"""


def quoted(v) -> str:
    """A value as Athena's CSV writes it: quoted, quotes doubled; a double in its shortest
    round-tripping form (Python's repr)."""
    text = repr(v) if isinstance(v, float) else str(v)
    return '"' + text.replace('"', '""') + '"'


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archive", type=pathlib.Path, required=True)
    ap.add_argument("--sql", type=pathlib.Path, required=True)
    ap.add_argument("--table", required=True)
    ap.add_argument("--out", type=pathlib.Path, required=True)
    args = ap.parse_args()

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    for macro in TRINO_MACROS:
        con.execute(macro)
    con.execute(table_sql(args.archive, args.table))
    started = time.monotonic()
    cur = con.execute(args.sql.read_text())
    names = [d[0] for d in cur.description]
    with args.out.open("w") as f:
        f.write(",".join(quoted(n) for n in names) + "\n")
        for row in cur.fetchall():
            f.write(",".join("" if v is None else quoted(v) for v in row) + "\n")
    # For the benchmark: the query's time and this process's peak memory (ru_maxrss is KiB).
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"duckdb_signals: query_s={time.monotonic() - started:.2f} peak_rss_mb={peak:.0f}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
