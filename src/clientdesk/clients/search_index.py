"""The per-database index that keeps client search fast at a million rows.

Both databases: `clients_client_walk`, the page order (sort_name, id) with `search_text`
beside it, so a search can read clients in page order and test them without visiting the
table (an index-only scan: a few hundred pages per 20,000 clients instead of one table page
per client).
PostgreSQL: a trigram GIN index on `search_text` serves `LIKE '%term%'`; for words of one or
two characters, which have no trigram, a GIN index on `clients_short_words(search_text)`,
the array of every distinct character and every distinct pair of adjacent characters
(spaces left out), serves `@> ARRAY['zo']`. Array containment is exact, so the index's
answer needs no recheck (the function is not run at query time).
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
PG_SHORT_WORDS = "clients_short_words"
WALK_INDEX = "clients_client_walk"
# PostgreSQL refuses a B-tree entry over 2,704 bytes; sort_name (at most 210 characters, 840
# bytes) and the id leave this much for search_text in the walk index (models.py cuts it).
SEARCH_TEXT_BYTES = 1_700
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

_SQLITE_WALK = [
    f"CREATE INDEX IF NOT EXISTS {WALK_INDEX} ON clients_client (sort_name, id, search_text)",
]

_POSTGRES_INSTALL = [
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "CREATE INDEX IF NOT EXISTS clients_client_search_trgm "
    "ON clients_client USING gin (search_text gin_trgm_ops)",
    # The pair-words trigram index this replaces: its recheck ran the function on every row.
    "DROP INDEX IF EXISTS clients_client_short_trgm",
    "DROP FUNCTION IF EXISTS clients_short_grams(text)",
    # Every distinct character and pair of adjacent characters of `text`, spaces left out.
    f"""CREATE OR REPLACE FUNCTION {PG_SHORT_WORDS}(text) RETURNS text[]
        LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
        SELECT coalesce(array_agg(DISTINCT w), '{{}}') FROM (
            SELECT substr($1, i, 1) AS w FROM generate_series(1, length($1)) AS i
            UNION ALL
            SELECT substr($1, i, 2) FROM generate_series(1, length($1) - 1) AS i
        ) AS words WHERE strpos(w, ' ') = 0
    $$""",
    "CREATE INDEX IF NOT EXISTS clients_client_short_words "
    f"ON clients_client USING gin ({PG_SHORT_WORDS}(search_text))",
    f"CREATE INDEX IF NOT EXISTS {WALK_INDEX} ON clients_client (sort_name, id) "
    "INCLUDE (search_text)",
]


def cut_search_text(text: str) -> str:
    """`text` cut to at most SEARCH_TEXT_BYTES bytes of UTF-8, at a character boundary."""
    data = text.encode()
    if len(data) <= SEARCH_TEXT_BYTES:
        return text
    return data[:SEARCH_TEXT_BYTES].decode(errors="ignore")


def _cut_long_texts(schema_editor: Any) -> None:
    """Texts saved before they were cut may be too long for a walk index entry."""
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            "SELECT id, search_text FROM clients_client WHERE octet_length(search_text) > %s",
            [SEARCH_TEXT_BYTES],
        )
        for pk, text in cursor.fetchall():
            cursor.execute(
                "UPDATE clients_client SET search_text = %s WHERE id = %s",
                [cut_search_text(text), pk],
            )


def install(apps: Any, schema_editor: Any) -> None:
    """Everything: on SQLite this rebuilds the FTS table (about 40 s at a million clients)."""
    vendor = schema_editor.connection.vendor
    statements = {
        "sqlite": [*_SQLITE_INSTALL, *_SQLITE_WALK],
        "postgresql": _POSTGRES_INSTALL,
    }.get(vendor, [])
    if vendor == "postgresql":
        _cut_long_texts(schema_editor)
    for sql in statements:
        schema_editor.execute(sql)


def install_walk(apps: Any, schema_editor: Any) -> None:
    """What migration 0006 adds: the walk index, and on PostgreSQL the short-word index in
    place of the pair-words one; the SQLite FTS table is left as it is."""
    vendor = schema_editor.connection.vendor
    statements = {"sqlite": _SQLITE_WALK, "postgresql": _POSTGRES_INSTALL}.get(vendor, [])
    if vendor == "postgresql":
        _cut_long_texts(schema_editor)
    for sql in statements:
        schema_editor.execute(sql)


def uninstall(apps: Any, schema_editor: Any) -> None:
    vendor = schema_editor.connection.vendor
    if vendor == "sqlite":
        for name in SQLITE_TRIGGERS:
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {name}")
        schema_editor.execute(f"DROP TABLE IF EXISTS {SQLITE_VOCAB_TABLE}")
        schema_editor.execute(f"DROP TABLE IF EXISTS {SQLITE_FTS_TABLE}")
        schema_editor.execute(f"DROP INDEX IF EXISTS {WALK_INDEX}")
    elif vendor == "postgresql":
        schema_editor.execute("DROP INDEX IF EXISTS clients_client_search_trgm")
        schema_editor.execute("DROP INDEX IF EXISTS clients_client_short_trgm")
        schema_editor.execute("DROP INDEX IF EXISTS clients_client_short_words")
        schema_editor.execute(f"DROP INDEX IF EXISTS {WALK_INDEX}")
