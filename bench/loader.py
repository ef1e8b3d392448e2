"""Load the benchmark clients into the database named by DATABASE_URL; skip when already there.

Run by bench/run.py in a subprocess: `python bench/loader.py --count N --out FILE`.

SQLite: the FTS triggers and table are dropped, rows go in with executemany, then the app's
own `search_index.install` rebuilds the FTS table from the rows and recreates the triggers.
PostgreSQL: the trigram index is dropped, rows go in with COPY, then `search_index.install`
recreates the index, and VACUUM ANALYZE leaves the table as autovacuum eventually would.
"""

# Django is set up (below) before anything imports a model.
# ruff: noqa: E402

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "clientdesk.settings")

import django

django.setup()

from django.core.management import call_command
from django.db import connection, transaction

import datagen
from clientdesk.clients import search_index
from clientdesk.clients.models import Client

BATCH = 20_000
PG_INDEX = "clients_client_search_trgm"


def log(message: str) -> None:
    print(f"  [{connection.vendor}] {message}", flush=True)


def _fields() -> list[Any]:
    return list(Client._meta.concrete_fields)


def _prepped_rows(count: int) -> Any:
    fields = _fields()
    started = time.perf_counter()
    for n in range(1, count + 1):
        row = datagen.client_values(n)
        # Columns the generator does not know (added to Client later) take their defaults.
        yield [
            field.get_db_prep_save(
                row[field.attname] if field.attname in row else field.get_default(), connection
            )
            for field in fields
        ]
        if n % 100_000 == 0:
            log(f"{n:>9,} rows ({time.perf_counter() - started:5.0f} s)")


def index_ready() -> bool:
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute(
                "SELECT count(*) FROM sqlite_master "
                "WHERE type = 'trigger' AND name IN (%s, %s, %s)",
                list(search_index.SQLITE_TRIGGERS),
            )
            if cursor.fetchone()[0] != len(search_index.SQLITE_TRIGGERS):
                return False
            cursor.execute(f"SELECT count(*) FROM {search_index.SQLITE_FTS_TABLE}")
            return cursor.fetchone()[0] == Client.objects.count()
        cursor.execute("SELECT count(*) FROM pg_indexes WHERE indexname = %s", [PG_INDEX])
        return cursor.fetchone()[0] == 1


def clear() -> None:
    """Start from an empty clients table (bench databases only)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("TRUNCATE clients_client CASCADE")
            cursor.execute(f"DROP INDEX IF EXISTS {PG_INDEX}")
            cursor.execute("DROP INDEX IF EXISTS clients_client_short_trgm")
            cursor.execute("DROP INDEX IF EXISTS clients_client_short_words")
            cursor.execute(f"DROP INDEX IF EXISTS {search_index.WALK_INDEX}")
        return
    # SQLite: a new file, migrated afresh, so no table that points at clients is left over.
    path = Path(connection.settings_dict["NAME"])
    connection.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    call_command("migrate", verbosity=0, interactive=False)
    # Drop the FTS triggers while loading; search_index.install rebuilds everything after.
    with connection.schema_editor() as editor:
        search_index.uninstall(None, editor)


def load_sqlite(count: int) -> None:
    fields = _fields()
    columns = ", ".join(f'"{f.column}"' for f in fields)
    marks = ", ".join(["%s"] * len(fields))
    sql = f"INSERT INTO clients_client ({columns}) VALUES ({marks})"
    with connection.cursor() as cursor:
        # Bench data can be rebuilt, so skip fsyncs while loading; the page cache helps the
        # three B-tree indexes (random UUID primary key, external id, sort key).
        cursor.execute("PRAGMA synchronous=OFF")
        cursor.execute("PRAGMA cache_size=-524288")
    batch: list[list[Any]] = []
    for values in _prepped_rows(count):
        batch.append(values)
        if len(batch) == BATCH:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.executemany(sql, batch)
            batch = []
    if batch:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.executemany(sql, batch)
    log("rows in; building the FTS5 trigram table (search_index.install)")
    started = time.perf_counter()
    with connection.schema_editor() as editor:
        search_index.install(None, editor)
    log(f"FTS table built in {time.perf_counter() - started:.0f} s")
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        cursor.execute("PRAGMA synchronous=NORMAL")


def load_postgres(count: int) -> None:
    fields = _fields()
    columns = ", ".join(f'"{f.column}"' for f in fields)
    copy_sql = f"COPY clients_client ({columns}) FROM STDIN"
    with (
        transaction.atomic(),
        connection.cursor() as cursor,
        cursor.cursor.copy(copy_sql) as copy,
    ):
        for values in _prepped_rows(count):
            copy.write_row(values)
    log("rows in; building the trigram GIN index (search_index.install)")
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("SET maintenance_work_mem = '1GB'")
    with connection.schema_editor() as editor:
        search_index.install(None, editor)
    log(f"GIN index built in {time.perf_counter() - started:.0f} s")
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM (ANALYZE) clients_client")
    log(f"VACUUM ANALYZE in {time.perf_counter() - started:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=datagen.DEFAULT_COUNT)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    started = time.perf_counter()
    existing = Client.objects.count()
    if existing == args.count and index_ready():
        log(f"{existing:,} clients and the search index already there; not loading")
        loaded = False
    else:
        log(f"found {existing:,} clients; (re)loading {args.count:,}")
        clear()
        if connection.vendor == "sqlite":
            load_sqlite(args.count)
        else:
            load_postgres(args.count)
        loaded = True
        if Client.objects.count() != args.count or not index_ready():
            raise SystemExit("load finished but the row count or search index is wrong")
    seconds = time.perf_counter() - started
    if loaded:
        log(f"loaded {args.count:,} clients in {seconds:.0f} s")
    args.out.write_text(
        json.dumps(
            {"vendor": connection.vendor, "count": args.count, "loaded": loaded, "seconds": seconds}
        )
    )


if __name__ == "__main__":
    main()
