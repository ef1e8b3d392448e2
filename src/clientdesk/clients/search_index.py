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
PostgreSQL also keeps `clients_search_head`: for every run of three and of four characters
(no space) of any client's search_text, a sort_name no greater than that of the first client
in page order whose text holds it. No client containing a word sorts before the greatest of
these over the word's runs, so a search starts walking the page order there instead of at the
first client: for a common surname late in the alphabet (Smith, 40,000 clients at 1M, the
first of them three quarters down the page order) the first page is the next few rows. A
trigger lowers an entry when a client is saved with a smaller sort_name; nothing raises one
(a renamed or deleted client leaves it lower than it needs to be, which is still right, only
less helpful); `install` rebuilds the table exactly.
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
PG_HEADS = "clients_search_head"
PG_GRAMS = "clients_grams"
PG_HEAD_TRIGGERS = ("clients_search_head_ai", "clients_search_head_au")
# The lengths of the runs of characters clients_search_head keeps a bound for. Four narrows
# what three cannot: "wilson" has "ils" (Nils), "lso" (nilsoberg@…) and "son" (everywhere)
# early in page order, but "wils" only at the first Wilson.
HEAD_GRAMS = (3, 4)

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

_POSTGRES_HEADS = [
    # Every distinct run of three and of four characters of `text` without a space.
    f"""CREATE OR REPLACE FUNCTION {PG_GRAMS}(text) RETURNS text[]
        LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
        SELECT coalesce(array_agg(DISTINCT g), '{{}}') FROM (
            SELECT substr($1, i, n) AS g
            FROM generate_series({HEAD_GRAMS[0]:d}, {HEAD_GRAMS[-1]:d}) AS n,
                generate_series(1, length($1) - n + 1) AS i
        ) AS grams WHERE strpos(g, ' ') = 0
    $$""",
    # The column has the collation of clients_client.sort_name (the default), so its order
    # is the page order. A trigram's bound is the least of its rows: a save adds a row only
    # when it lowers the bound, then deletes the rows that no longer count, skipping any that
    # another transaction holds (they go the next time). Nothing here waits for a lock, so
    # two transactions saving clients never block or deadlock each other on this table.
    f"CREATE TABLE IF NOT EXISTS {PG_HEADS} (gram text NOT NULL, sort_name varchar(210) NOT NULL)",
    f"CREATE INDEX IF NOT EXISTS {PG_HEADS}_gram ON {PG_HEADS} (gram, sort_name)",
    f"""CREATE OR REPLACE FUNCTION {PG_HEADS}_note() RETURNS trigger
        LANGUAGE plpgsql AS $$
        DECLARE
            lowered text[];
        BEGIN
            WITH added AS (
                INSERT INTO {PG_HEADS} (gram, sort_name)
                SELECT g, NEW.sort_name FROM unnest({PG_GRAMS}(NEW.search_text)) AS g
                WHERE NOT EXISTS (
                    SELECT 1 FROM {PG_HEADS} e WHERE e.gram = g AND e.sort_name <= NEW.sort_name
                )
                RETURNING gram
            )
            SELECT array_agg(gram) INTO lowered FROM added;
            IF lowered IS NOT NULL THEN
                DELETE FROM {PG_HEADS} d USING (
                    SELECT ctid AS row_id FROM {PG_HEADS}
                    WHERE gram = ANY(lowered) AND sort_name > NEW.sort_name
                    FOR UPDATE SKIP LOCKED
                ) AS stale WHERE d.ctid = stale.row_id;
            END IF;
            RETURN NULL;
        END
    $$""",
    *(f"DROP TRIGGER IF EXISTS {name} ON clients_client" for name in PG_HEAD_TRIGGERS),
    f"CREATE TRIGGER {PG_HEAD_TRIGGERS[0]} AFTER INSERT ON clients_client "
    f"FOR EACH ROW EXECUTE FUNCTION {PG_HEADS}_note()",
    f"CREATE TRIGGER {PG_HEAD_TRIGGERS[1]} AFTER UPDATE OF search_text, sort_name "
    "ON clients_client FOR EACH ROW WHEN (OLD.search_text IS DISTINCT FROM NEW.search_text "
    f"OR OLD.sort_name IS DISTINCT FROM NEW.sort_name) EXECUTE FUNCTION {PG_HEADS}_note()",
    # The exact table, from the rows as they are (about a minute at a million clients).
    f"TRUNCATE {PG_HEADS}",
    f"INSERT INTO {PG_HEADS} (gram, sort_name) SELECT g, min(sort_name) "
    f"FROM clients_client, unnest({PG_GRAMS}(search_text)) AS g GROUP BY g",
    f"ANALYZE {PG_HEADS}",
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
        "postgresql": [*_POSTGRES_INSTALL, *_POSTGRES_HEADS],
    }.get(vendor, [])
    if vendor == "postgresql":
        _cut_long_texts(schema_editor)
    for sql in statements:
        schema_editor.execute(sql)


def install_heads(apps: Any, schema_editor: Any) -> None:
    """What migration 0008 adds: on PostgreSQL the first-in-page-order table and its triggers."""
    if schema_editor.connection.vendor == "postgresql":
        for sql in _POSTGRES_HEADS:
            schema_editor.execute(sql)


def uninstall_heads(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "postgresql":
        for name in PG_HEAD_TRIGGERS:
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {name} ON clients_client")
        schema_editor.execute(f"DROP FUNCTION IF EXISTS {PG_HEADS}_note()")
        schema_editor.execute(f"DROP TABLE IF EXISTS {PG_HEADS}")
        schema_editor.execute(f"DROP FUNCTION IF EXISTS {PG_GRAMS}(text)")


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
        uninstall_heads(apps, schema_editor)
