"""Load the benchmark clients into the database named by DATABASE_URL; skip when already there.

Run by bench/run.py in a subprocess: `python bench/loader.py --count N --out FILE`.

SQLite: a new file, migrated, the FTS triggers and table dropped, rows in with executemany, then
the app's own `search_index.install` rebuilds the FTS table from the rows and the triggers.
PostgreSQL: the trigram indexes and the search-head triggers are dropped, rows go in with COPY,
then `search_index.install` recreates them, and VACUUM ANALYZE leaves the table as autovacuum
eventually would.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterator
from pathlib import Path

from common import say, setup_django

setup_django()

from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402

import datagen  # noqa: E402
from clientdesk.clients import search_index  # noqa: E402
from clientdesk.clients.models import Client  # noqa: E402

BATCH = 20_000
PG_INDEX = "clients_client_search_trgm"
FIELDS = list(Client._meta.concrete_fields)
COLUMNS = ", ".join(f'"{f.column}"' for f in FIELDS)


def log(message: str) -> None:
    say(connection.vendor, message)


def rows(count: int) -> Iterator[list[object]]:
    started = time.perf_counter()
    for n in range(1, count + 1):
        row = datagen.client_values(n)
        # Columns the generator does not know (added to Client later) take their defaults.
        yield [
            f.get_db_prep_save(row[f.attname] if f.attname in row else f.get_default(), connection)
            for f in FIELDS
        ]
        if n % 100_000 == 0:
            log(f"{n:>9,} rows ({time.perf_counter() - started:5.0f} s)")


def index_ready() -> bool:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT count(*) FROM pg_indexes WHERE indexname = %s", [PG_INDEX])
            return cursor.fetchone()[0] == 1
        triggers = list(search_index.SQLITE_TRIGGERS)
        cursor.execute(
            "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name IN (%s, %s, %s)",
            triggers,
        )
        if cursor.fetchone()[0] != len(triggers):
            return False
        cursor.execute(f"SELECT count(*) FROM {search_index.SQLITE_FTS_TABLE}")
        return cursor.fetchone()[0] == Client.objects.count()


def load_sqlite(count: int) -> None:
    # A new file, migrated afresh, so no table that points at clients is left over.
    path = Path(connection.settings_dict["NAME"])
    connection.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    call_command("migrate", verbosity=0, interactive=False)
    with connection.schema_editor() as editor:
        search_index.uninstall(None, editor)
    sql = f"INSERT INTO clients_client ({COLUMNS}) VALUES ({', '.join(['%s'] * len(FIELDS))})"
    with connection.cursor() as cursor:
        # Bench data can be rebuilt, so skip fsyncs while loading; the page cache helps the
        # three B-tree indexes (random UUID primary key, external id, sort key).
        cursor.execute("PRAGMA synchronous=OFF")
        cursor.execute("PRAGMA cache_size=-524288")
    batch: list[list[object]] = []
    for values in rows(count):
        batch.append(values)
        if len(batch) == BATCH:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.executemany(sql, batch)
            batch = []
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.executemany(sql, batch)
    log("rows in; building the FTS5 trigram table (search_index.install)")
    with connection.schema_editor() as editor:
        search_index.install(None, editor)
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        cursor.execute("PRAGMA synchronous=NORMAL")


def load_postgres(count: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE clients_client CASCADE")
        cursor.execute(f"DROP INDEX IF EXISTS {PG_INDEX}")
        cursor.execute("DROP INDEX IF EXISTS clients_client_short_trgm")
        cursor.execute("DROP INDEX IF EXISTS clients_client_short_words")
        cursor.execute(f"DROP INDEX IF EXISTS {search_index.WALK_INDEX}")
        # `install` recreates them and rebuilds their table from all the rows at once.
        for name in search_index.PG_HEAD_TRIGGERS:
            cursor.execute(f"DROP TRIGGER IF EXISTS {name} ON clients_client")
    copy_sql = f"COPY clients_client ({COLUMNS}) FROM STDIN"
    with transaction.atomic(), connection.cursor() as cursor, cursor.cursor.copy(copy_sql) as copy:
        for values in rows(count):
            copy.write_row(values)
    log("rows in; building the trigram GIN indexes (search_index.install)")
    with connection.cursor() as cursor:
        cursor.execute("SET maintenance_work_mem = '1GB'")
    with connection.schema_editor() as editor:
        search_index.install(None, editor)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM (ANALYZE) clients_client")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=datagen.DEFAULT_COUNT)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    started = time.perf_counter()
    existing = Client.objects.count()
    loaded = not (existing == args.count and index_ready())
    if loaded:
        log(f"found {existing:,} clients; (re)loading {args.count:,}")
        (load_postgres if connection.vendor == "postgresql" else load_sqlite)(args.count)
        if Client.objects.count() != args.count or not index_ready():
            raise SystemExit("load finished but the row count or search index is wrong")
    seconds = time.perf_counter() - started
    log(f"{args.count:,} clients {'loaded' if loaded else 'already there'} ({seconds:.0f} s)")
    result = {"vendor": connection.vendor, "count": args.count, "loaded": loaded}
    args.out.write_text(json.dumps({**result, "seconds": seconds}))


if __name__ == "__main__":
    main()
