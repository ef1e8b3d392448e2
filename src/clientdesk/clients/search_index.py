"""The per-database index that keeps client search fast at a million rows.

PostgreSQL: a trigram GIN index on `search_text` serves `LIKE '%term%'`; for words of one or
two characters, which have no trigram, a second trigram index on `clients_short_grams(
search_text)`, every distinct pair of adjacent characters as a word (" zo oe e "), serves
`LIKE '% zo %'` (a pair) and `LIKE '% z%'` (one character).
SQLite: an FTS5 table with the trigram tokenizer whose rows share the client rows' rowids,
kept in step by triggers. It indexes `search_text` plus two spaces, so every character
and pair of the text begins some trigram; the table's vocabulary (`fts5vocab`) lists the
trigrams that begin with a short word, and a `MATCH` of any of them finds its clients.
Django rebuilds a SQLite table (dropping its triggers, renumbering rowids) when some columns
change, and VACUUM may renumber rowids, so any migration that
alters `clients_client`, and any VACUUM, must be followed by `install` (it rebuilds the
index); a test checks that the triggers exist after all migrations.
"""

# Every statement here is built from module constants only, never from input.
# ruff: noqa: S608

from typing import Any

SQLITE_FTS_TABLE = "clients_client_fts"
SQLITE_VOCAB_TABLE = "clients_client_fts_vocab"
PG_SHORT_GRAMS = "clients_short_grams"
SQLITE_TRIGGERS = ("clients_client_fts_ai", "clients_client_fts_ad", "clients_client_fts_au")

_SQLITE_INSTALL = [
    *(f"DROP TRIGGER IF EXISTS {name}" for name in SQLITE_TRIGGERS),
    f"DROP TABLE IF EXISTS {SQLITE_VOCAB_TABLE}",
    f"DROP TABLE IF EXISTS {SQLITE_FTS_TABLE}",
    # Rows are keyed by the client row's rowid, so triggers find them through the index.
    f"CREATE VIRTUAL TABLE {SQLITE_FTS_TABLE} USING fts5(search_text, tokenize='trigram')",
    f"CREATE VIRTUAL TABLE {SQLITE_VOCAB_TABLE} USING fts5vocab({SQLITE_FTS_TABLE}, 'row')",
    f"INSERT INTO {SQLITE_FTS_TABLE}(rowid, search_text) "
    "SELECT rowid, search_text || '  ' FROM clients_client",
    f"""CREATE TRIGGER clients_client_fts_ai AFTER INSERT ON clients_client BEGIN
        INSERT INTO {SQLITE_FTS_TABLE}(rowid, search_text)
        VALUES (new.rowid, new.search_text || '  ');
    END""",
    f"""CREATE TRIGGER clients_client_fts_ad AFTER DELETE ON clients_client BEGIN
        DELETE FROM {SQLITE_FTS_TABLE} WHERE rowid = old.rowid;
    END""",
    f"""CREATE TRIGGER clients_client_fts_au AFTER UPDATE OF search_text ON clients_client BEGIN
        DELETE FROM {SQLITE_FTS_TABLE} WHERE rowid = old.rowid;
        INSERT INTO {SQLITE_FTS_TABLE}(rowid, search_text)
        VALUES (new.rowid, new.search_text || '  ');
    END""",
]

_POSTGRES_INSTALL = [
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "CREATE INDEX IF NOT EXISTS clients_client_search_trgm "
    "ON clients_client USING gin (search_text gin_trgm_ops)",
    # " " + each distinct pair of adjacent characters of `text` and a trailing space, as words.
    f"""CREATE OR REPLACE FUNCTION {PG_SHORT_GRAMS}(text) RETURNS text
        LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
        SELECT ' ' || coalesce(string_agg(DISTINCT substr($1 || ' ', i, 2), ' '), '') || ' '
        FROM generate_series(1, length($1)) AS i
    $$""",
    "CREATE INDEX IF NOT EXISTS clients_client_short_trgm "
    f"ON clients_client USING gin ({PG_SHORT_GRAMS}(search_text) gin_trgm_ops)",
]


def install(apps: Any, schema_editor: Any) -> None:
    vendor = schema_editor.connection.vendor
    statements = {"sqlite": _SQLITE_INSTALL, "postgresql": _POSTGRES_INSTALL}.get(vendor, [])
    for sql in statements:
        schema_editor.execute(sql)


def uninstall(apps: Any, schema_editor: Any) -> None:
    vendor = schema_editor.connection.vendor
    if vendor == "sqlite":
        for name in SQLITE_TRIGGERS:
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {name}")
        schema_editor.execute(f"DROP TABLE IF EXISTS {SQLITE_VOCAB_TABLE}")
        schema_editor.execute(f"DROP TABLE IF EXISTS {SQLITE_FTS_TABLE}")
    elif vendor == "postgresql":
        schema_editor.execute("DROP INDEX IF EXISTS clients_client_search_trgm")
        schema_editor.execute("DROP INDEX IF EXISTS clients_client_short_trgm")
