"""Database triggers that refuse UPDATE and DELETE on the ledger, on PostgreSQL and SQLite.

They stop the application and anyone editing rows through SQL by mistake. Someone who may alter
the schema can drop them: what catches that is a signed checkpoint held outside the database
(`verify_audit --checkpoint`). A migration that must change ledger rows says so by running
inside `ledger_maintenance()`.
"""

import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import connection, transaction
from django.db.backends.base.base import BaseDatabaseWrapper

PROTECTED_TABLES = ("audit_auditrecord", "audit_audittreenode", "audit_auditcheckpoint")
# SQLite reads this function from the connection; a connection that lacks it (the sqlite3
# shell) fails the trigger's WHEN clause and so refuses the change as well.
_SQLITE_FUNCTION = "clientdesk_ledger_maintenance"
_PG_SETTING = "clientdesk.ledger_maintenance"
_PG_FUNCTION = "clientdesk_refuse_ledger_change"
# SQLite connections inside `ledger_maintenance()` (the test suite's flush adds its own);
# PostgreSQL keeps its switch in the transaction (`set_config(..., true)`).
connections_in_maintenance: "weakref.WeakSet[BaseDatabaseWrapper]" = weakref.WeakSet()


def register_sqlite_function(sender: Any, connection: BaseDatabaseWrapper, **kwargs: Any) -> None:
    """`connection_created` receiver: give each SQLite connection the maintenance switch."""
    if connection.vendor != "sqlite":
        return
    wrapper = connection
    connection.connection.create_function(
        _SQLITE_FUNCTION, 0, lambda: int(wrapper in connections_in_maintenance)
    )


def _sqlite_statements(table: str) -> list[str]:
    return [
        f"CREATE TRIGGER IF NOT EXISTS {table}_no_{op.lower()} BEFORE {op} ON {table} "
        f"WHEN {_SQLITE_FUNCTION}() = 0 "
        f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: {op} refused'); END"
        for op in ("UPDATE", "DELETE")
    ]


def _pg_statements(table: str) -> list[str]:
    return [
        f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}",
        f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
        f"FOR EACH ROW EXECUTE FUNCTION {_PG_FUNCTION}()",
    ]


_PG_FUNCTION_SQL = f"""
CREATE OR REPLACE FUNCTION {_PG_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF coalesce(current_setting('{_PG_SETTING}', true), '') = 'on' THEN
        IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
        RETURN NEW;
    END IF;
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'restrict_violation';
END
$$
"""


def install(schema_editor: Any) -> None:
    """Create the triggers (idempotent). Run by migrations, and again after any migration
    that rebuilds one of these tables on SQLite (a rebuild drops its triggers)."""
    vendor = schema_editor.connection.vendor
    statements: list[str] = []
    if vendor == "postgresql":
        statements.append(_PG_FUNCTION_SQL)
        for table in PROTECTED_TABLES:
            statements += _pg_statements(table)
    elif vendor == "sqlite":
        for table in PROTECTED_TABLES:
            statements += _sqlite_statements(table)
    for sql in statements:
        schema_editor.execute(sql, params=None)


def uninstall(schema_editor: Any) -> None:
    vendor = schema_editor.connection.vendor
    for table in PROTECTED_TABLES:
        if vendor == "postgresql":
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
        elif vendor == "sqlite":
            for op in ("update", "delete"):
                schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_no_{op}")
    if vendor == "postgresql":
        schema_editor.execute(f"DROP FUNCTION IF EXISTS {_PG_FUNCTION}()")


def installed_triggers() -> set[str]:
    """Names of the append-only triggers present, for the check after migrations."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal AND tgname LIKE %s",
                ["audit_%_append_only"],
            )
        else:
            cursor.execute(
                "SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE %s",
                ["audit_%_no_%"],
            )
        return {row[0] for row in cursor.fetchall()}


def expected_triggers(vendor: str) -> set[str]:
    if vendor == "postgresql":
        return {f"{table}_append_only" for table in PROTECTED_TABLES}
    return {f"{table}_no_{op}" for table in PROTECTED_TABLES for op in ("update", "delete")}


@contextmanager
def ledger_maintenance() -> Iterator[None]:
    """Let this transaction change ledger rows: for a migration that must, said explicitly.
    On PostgreSQL the switch holds until the transaction ends."""
    conn = transaction.get_connection()
    if not conn.in_atomic_block:
        raise RuntimeError("ledger maintenance must run inside a transaction")
    if conn.vendor == "postgresql":
        with conn.cursor() as cursor:
            cursor.execute("SELECT set_config(%s, 'on', true)", [_PG_SETTING])
        yield
        return
    connections_in_maintenance.add(conn)
    try:
        yield
    finally:
        connections_in_maintenance.discard(conn)
