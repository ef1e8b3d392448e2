"""Reads for clients: lookup and search."""

import json
import re
import uuid
from typing import Any

from django.core.exceptions import ValidationError
from django.db import connection, transaction

from clientdesk.clients.models import Client
from clientdesk.clients.search_index import (
    HEAD_GRAMS,
    PG_HEADS,
    PG_SHORT_WORDS,
    SQLITE_FTS_TABLE,
    SQLITE_VOCAB_TABLE,
)
from clientdesk.core.errors import NotFound
from clientdesk.core.pagination import Page, paginate
from clientdesk.core.text import fold

MAX_QUERY_TERMS = 8
MAX_TERM_LENGTH = 64
# The trigram indexes serve terms of three characters or more.
TRIGRAM = 3
# How many clients, in page order, a search first looks through before asking the index.
WALK_ROWS = 2_000
# How many matches the index may hand over before a word counts as common.
PROBE_ROWS = 1_000
# How far a search walks in page order for a common word before reading all its matches.
FAR_WALK_ROWS = 30_000
# A short word that begins more trigrams than this is too common for the vocabulary route
# (an FTS5 OR of that many trigrams costs more than the far walk that answers such words).
SHORT_WORD_TRIGRAMS = 100
# A word with this many digits is rare enough for the trigram index to look up alone.
INDEX_DIGITS = 5
_TABLE = Client._meta.db_table
_ORDER = "ORDER BY sort_name, id"


def client_get(*, client_id: uuid.UUID | str) -> Client:
    try:
        return Client.objects.get(pk=client_id)
    except (Client.DoesNotExist, ValidationError, ValueError) as error:
        raise NotFound("No such client.") from error


def client_with_external_id(*, external_id: str, page: int, size: int) -> Page[Client]:
    """The client whose external id is exactly `external_id` (at most one: it is unique), as a
    page of the search's shape."""
    return paginate(
        Client.objects.filter(external_id=external_id).order_by("sort_name", "id"),
        page=page,
        size=size,
    )


def search_terms(query: str) -> list[str]:
    return [term[:MAX_TERM_LENGTH] for term in fold(query).split()[:MAX_QUERY_TERMS]]


def _contains(term: str) -> str:
    return f"%{_escape(term)}%"


def _escape(term: str) -> str:
    return term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _fts_string(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def _sqlite_short_match(short: list[str]) -> str | None:
    """An FTS5 query for clients containing every word of `short` (one or two characters):
    the index holds the text plus two spaces, so each occurrence of such a word begins
    a trigram, and the vocabulary lists those trigrams in order. "" when a word begins no
    trigram (nothing can match); None when every word is too common for this to help."""
    groups = []
    with connection.cursor() as cursor:
        for term in short:
            cursor.execute(
                f"SELECT term FROM {SQLITE_VOCAB_TABLE} WHERE term >= %s AND term <= %s LIMIT %s",  # noqa: S608 - constants
                [term, term + "\U0010ffff", SHORT_WORD_TRIGRAMS + 1],
            )
            trigrams = [row[0] for row in cursor.fetchall()]
            if not trigrams:
                return ""
            if len(trigrams) <= SHORT_WORD_TRIGRAMS:
                groups.append("(" + " OR ".join(_fts_string(t) for t in trigrams) + ")")
    return " AND ".join(groups) or None


def _short_words(term: str) -> list[str]:
    """What clients_short_words() must hold for a text to contain `term`: the term itself when
    it is one or two characters (exact), else each of its adjacent pairs (a necessary test)."""
    if len(term) < TRIGRAM:
        return [term]
    return sorted({term[i : i + 2] for i in range(len(term) - 1)})


def _pg_trigram_term(term: str) -> bool:
    # pg_trgm takes trigrams from runs of letters and digits, padding short runs with spaces:
    # for "1=1" or "a.b" only padded trigrams that most clients have. Such a term is left to
    # the short-word index.
    return any(len(run) >= TRIGRAM for run in re.findall(r"[^\W_]+", term))


def _pg_index_word(term: str) -> str:
    """What the PostgreSQL trigram index looks up for `term`: in a term of several words
    ("crm-0723081", "client57376@gmail.com"), the longest one with five digits or more when
    there is one (few clients share it). The other words ("crm", "gmail", "com") are in a
    large share of all clients, and the index reads each trigram's whole list: 25 ms for
    "crm-0723081", 2 ms for "0723081"."""
    words = [w for w in re.findall(r"[^\W_]+", term) if sum(c.isdigit() for c in w) >= INDEX_DIGITS]
    if len(words) and words[0] != term:
        return max(words, key=len)
    return term


def _candidates(terms: list[str], like: str) -> tuple[str, list[Any]] | None:
    """A SELECT of (id, sort_name) of every client matching all `terms` that an index
    answers, with its parameters; None when no index can (a SQLite word too common for the
    vocabulary route). `like` is the LIKE test of all terms, on the column search_text."""
    likes = [_contains(t) for t in terms]
    if connection.vendor != "sqlite":
        tests, params = [], []
        for term in terms:
            if not _pg_trigram_term(term):
                # Exact, and not something the trigram index would try to look up.
                tests.append("strpos(search_text, %s) > 0")
                params.append(term)
                continue
            word = _pg_index_word(term)
            tests.append("search_text LIKE %s")
            params.append(_contains(word))
            if word != term:
                # The index looks up the word; this keeps the answer exact (LIKE without
                # wildcards, which the index would look up too).
                tests.append("strpos(search_text, %s) > 0")
                params.append(term)
        where = " AND ".join(tests)
        words = sorted({w for t in terms if not _pg_trigram_term(t) for w in _short_words(t)})
        if not words:
            return f"SELECT id, sort_name FROM {_TABLE} WHERE {where}", params  # noqa: S608 - constants
        short = f"{PG_SHORT_WORDS}(search_text) @> %s::text[]"
        sql = f"SELECT id, sort_name FROM {_TABLE} WHERE {short} AND {where}"  # noqa: S608 - constants
        return sql, [words, *params]
    indexed = [t for t in terms if len(t) >= TRIGRAM]
    if indexed:
        match: str | None = " AND ".join(_fts_string(t) for t in indexed)
    else:
        match = _sqlite_short_match(terms)
    if match is None:
        return None
    if match == "":
        return f"SELECT id, sort_name FROM {_TABLE} WHERE 0", []  # noqa: S608 - constants
    sql = (
        f"SELECT c.id, c.sort_name FROM {SQLITE_FTS_TABLE} f JOIN {_TABLE} c ON c.rowid = f.rowid "  # noqa: S608 - constants
        f"WHERE f.{SQLITE_FTS_TABLE} MATCH %s AND {like.replace('search_text', 'c.search_text')}"
    )
    return sql, [match, *likes]


def _first_possible(terms: list[str]) -> str | None:
    """PostgreSQL: a sort_name that no client matching every term sorts before, the greatest
    of the lower bounds clients_search_head holds for the terms' runs of three and four
    characters (a client holding a term holds each of them; a run's bound is the least of its
    rows); None: the first client (SQLite, or words shorter than a trigram only)."""
    grams = sorted({t[i : i + n] for t in terms for n in HEAD_GRAMS for i in range(len(t) - n + 1)})
    if connection.vendor != "postgresql" or not grams:
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT max(bound) FROM (SELECT min(sort_name) AS bound FROM {PG_HEADS} "  # noqa: S608 - constants
            "WHERE gram = ANY(%s::text[]) GROUP BY gram) b",
            [grams],
        )
        (start,) = cursor.fetchone()
    return str(start) if start is not None else None


def _walk(
    rows: int | None, like: str, likes: list[str], offset: int, want: int, start: str | None
) -> list[Client]:
    """The page from the first `rows` clients in page order from sort_name `start` (from the
    first client when None; all of them when `rows` is None), read from the walk index (page
    order with search_text beside it) without visiting the table."""
    limit = "" if rows is None else f"LIMIT {rows:d}"
    where = "" if start is None else "WHERE sort_name >= %s"
    sql = (
        f"SELECT * FROM {_TABLE} WHERE id IN (SELECT id FROM (SELECT id, sort_name, search_text "  # noqa: S608 - constants
        f"FROM {_TABLE} {where} {_ORDER} {limit}) w WHERE {like} {_ORDER} "
        f"LIMIT {want:d} OFFSET {offset:d}) {_ORDER}"
    )
    return list(Client.objects.raw(sql, likes if start is None else [start, *likes]))


def _position_beyond(sort_name: str, rows: int, start: str | None) -> bool:
    """Whether about `rows` clients or more have a smaller sort_name (and none smaller than
    `start`): PostgreSQL's estimate from its statistics; SQLite (no statistics kept) counts
    at most `rows` sort index entries."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"EXPLAIN (FORMAT JSON) SELECT 1 FROM {_TABLE} WHERE sort_name < %s "  # noqa: S608 - constants
                "AND sort_name >= %s",
                [sort_name, start or ""],
            )
            (plan,) = cursor.fetchone()
            if isinstance(plan, str):
                plan = json.loads(plan)
            return bool(plan[0]["Plan"]["Plan Rows"] >= rows)
        cursor.execute(
            f"SELECT count(*) FROM (SELECT 1 FROM {_TABLE} INDEXED BY clients_sort_idx "  # noqa: S608 - constants
            f"WHERE sort_name < %s AND sort_name >= %s LIMIT {rows:d}) b",
            [sort_name, start or ""],
        )
        (count,) = cursor.fetchone()
    return bool(count >= rows)


def client_search(
    *,
    query: str = "",
    page: int = 1,
    size: int = 25,
    walk: int = WALK_ROWS,
    probe: int = PROBE_ROWS,
    far_walk: int = FAR_WALK_ROWS,
) -> Page[Client]:
    """See `_client_search`. On PostgreSQL its statements run without parallel workers:
    starting them costs more than the few thousand rows any of these statements reads, and
    the two cores are shared with the web workers."""
    if connection.vendor != "postgresql" or not search_terms(query):
        return _client_search(query, page, size, walk, probe, far_walk)
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL max_parallel_workers_per_gather = 0")
        return _client_search(query, page, size, walk, probe, far_walk)


def _client_search(
    query: str, page: int, size: int, walk: int, probe: int, far_walk: int
) -> Page[Client]:
    """One page of clients whose name, email, phone or external id contain every word of
    `query`, in name order. Case and accents are ignored on both sides ("zoe" finds "Zoë").

    Bounded steps instead of one planner guess (left to itself, PostgreSQL walks the sort
    index for common surnames and filters a million rows):
    1. a common word fills the page from the first `walk` clients in page order; when those
       hold some matches but too few, the far walk (3) comes next; on PostgreSQL the walks
       start at the first sort_name a match can have (clients_search_head: a common surname
       late in the alphabet is found where its clients begin);
    2. the index (trigrams; for words shorter than a trigram, the short-word index on
       PostgreSQL, the trigram vocabulary on SQLite: clients/search_index.py) hands over at
       most `probe` + 1 matches; when that is all of them, they are the answer, sorted;
    3. a word with more matches fills the page from the first `far_walk` clients;
    4. otherwise all its matches are read from the index and sorted (on SQLite, for a word
       too common for the vocabulary, the walk goes on to the end).
    The walks read the walk index only (page order with search_text beside it).
    """
    terms = search_terms(query)
    if not terms:
        return paginate(Client.objects.order_by("sort_name", "id"), page=page, size=size)
    sqlite = connection.vendor == "sqlite"
    like = " AND ".join(["search_text LIKE %s" + (" ESCAPE '\\'" if sqlite else "")] * len(terms))
    likes = [_contains(t) for t in terms]
    offset, want = (page - 1) * size, size + 1

    def answer(rows: list[Client]) -> Page[Client]:
        return Page(items=rows[:size], number=page, has_next=len(rows) > size)

    start = _first_possible(terms)
    near = 0
    if offset + want <= walk:
        rows = _walk(walk, like, likes, offset, want, start)
        if len(rows) == want:
            return answer(rows)
        near = len(rows)
    far = offset + want <= far_walk
    # Matches among the first clients say the word is spread through the page order: the far
    # walk is likely to fill the page, so it goes before the index.
    if far and near:
        rows = _walk(far_walk, like, likes, offset, want, start)
        if len(rows) == want:
            return answer(rows)
        far = False

    candidates = _candidates(terms, like)
    if candidates is not None:
        source, params = candidates
        if sqlite:
            # Sorting in this statement too would make SQLite read every match first.
            first = f"{source} LIMIT {probe + 1:d}"
        else:
            first = (
                f"WITH m AS MATERIALIZED ({source}) "  # noqa: S608 - constants
                f"SELECT id, sort_name FROM (SELECT id, sort_name FROM m "
                f"LIMIT {probe + 1:d}) p {_ORDER}"
            )
        with connection.cursor() as cursor:
            cursor.execute(first, params)
            found_keys = cursor.fetchall()
        if len(found_keys) <= probe:
            if sqlite:
                found = Client.objects.filter(pk__in=[pk for pk, _ in found_keys])
                found = found.order_by("sort_name", "id")[offset : offset + want]
            else:
                ids = [pk for pk, _ in found_keys[offset : offset + want]]
                found = Client.objects.filter(pk__in=ids).order_by("sort_name", "id")
            return answer(list(found))
        # The probe's matches are a sample of them all: when none of them is among the first
        # 2 x `far_walk` clients, the matches cluster later in the page order (a surname,
        # another script) and the far walk would most likely come back short.
        if far and _position_beyond(min(name for _, name in found_keys), 2 * far_walk, start):
            far = False

    if far:
        rows = _walk(far_walk, like, likes, offset, want, start)
        if len(rows) == want:
            return answer(rows)

    if candidates is None:
        return answer(_walk(None, like, likes, offset, want, start))
    # MATERIALIZED keeps the planner from going back to walking the sort index.
    sql = (
        f"WITH m AS {'' if sqlite else 'MATERIALIZED'} ({source}) "  # noqa: S608 - constants
        f"SELECT * FROM {_TABLE} WHERE id IN (SELECT id FROM m {_ORDER} "
        f"LIMIT {want:d} OFFSET {offset:d}) {_ORDER}"
    )
    return answer(list(Client.objects.raw(sql, params)))
