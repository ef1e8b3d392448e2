"""Reads for clients: lookup and search."""

import uuid

from django.core.exceptions import ValidationError
from django.db import connection

from clientdesk.clients.models import Client
from clientdesk.clients.search_index import PG_SHORT_GRAMS, SQLITE_FTS_TABLE, SQLITE_VOCAB_TABLE
from clientdesk.core.errors import NotFound
from clientdesk.core.pagination import Page, paginate
from clientdesk.core.text import fold

MAX_QUERY_TERMS = 8
MAX_TERM_LENGTH = 64
# The trigram indexes serve terms of three characters or more.
TRIGRAM = 3
# How many clients, in page order, a search first looks through before asking the index.
WALK_ROWS = 2_000
# A short word that begins more trigrams than this is too common for the vocabulary route.
SHORT_WORD_TRIGRAMS = 300
# A short word with at most this many matches is answered from the pair index (PostgreSQL).
RARE_MATCHES = 200
_TABLE = Client._meta.db_table


def client_get(*, client_id: uuid.UUID | str) -> Client:
    try:
        return Client.objects.get(pk=client_id)
    except (Client.DoesNotExist, ValidationError, ValueError) as error:
        raise NotFound("No such client.") from error


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


def client_search(
    *, query: str = "", page: int = 1, size: int = 25, walk: int = WALK_ROWS
) -> Page[Client]:
    """One page of clients whose name, email, phone or external id contain every word of
    `query`, in name order. Case and accents are ignored on both sides ("zoe" finds "Zoë").

    Two bounded steps instead of one planner guess: a common word fills the page from the
    first `walk` clients in page order (the sort index); otherwise the trigram index finds all
    matches and only those are sorted. Left to itself, PostgreSQL walks the sort index for
    common surnames and filters a million rows. When every word is shorter than a trigram, a
    pair index (PostgreSQL) or the trigram vocabulary (SQLite) stands in for it
    (clients/search_index.py).
    """
    terms = search_terms(query)
    if not terms:
        return paginate(Client.objects.order_by("sort_name", "id"), page=page, size=size)
    sqlite = connection.vendor == "sqlite"
    like = "search_text LIKE %s" + (" ESCAPE '\\'" if sqlite else "")
    likes = [_contains(t) for t in terms]
    where = " AND ".join([like] * len(terms))
    offset, want = (page - 1) * size, size + 1
    order = f"ORDER BY sort_name, id LIMIT {want:d} OFFSET {offset:d}"

    if offset + want <= walk:
        first = (
            f"SELECT * FROM (SELECT * FROM {_TABLE} ORDER BY sort_name, id LIMIT {walk:d}) w "  # noqa: S608 - constants
            f"WHERE {where} {order}"
        )
        rows = list(Client.objects.raw(first, likes))
        if len(rows) == want:
            return Page(items=rows[:size], number=page, has_next=True)

    indexed = [t for t in terms if len(t) >= TRIGRAM]
    short = [t for t in terms if len(t) < TRIGRAM]
    match = " AND ".join(_fts_string(t) for t in indexed) if sqlite and indexed else None
    if sqlite and not indexed:
        match = _sqlite_short_match(short)
        if match == "":
            return Page(items=[], number=page, has_next=False)
    if sqlite and match:
        sql = (
            f"SELECT * FROM {_TABLE} WHERE rowid IN (SELECT rowid FROM {SQLITE_FTS_TABLE} "  # noqa: S608 - constants
            f"WHERE {SQLITE_FTS_TABLE} MATCH %s) AND {where} {order}"
        )
        params = [match, *likes]
    elif sqlite:
        # Words too common for the vocabulary route: one scan, then sort the matches. Walking
        # the sort index instead (the planner's choice) reads every row out of order.
        sql = f"SELECT * FROM {_TABLE} NOT INDEXED WHERE {where} {order}"  # noqa: S608 - constants
        params = likes
    elif not indexed:
        # " zo " is a pair among the words of clients_short_grams(search_text); " z" begins one.
        # The pair index answers rare words at once; for common ones its recheck (the
        # function, per candidate row) costs more than a scan, so it stops after a few.
        grams = [f"% {_escape(t)} %" if len(t) == 2 else f"% {_escape(t)}%" for t in short]
        pairs = " AND ".join([f"{PG_SHORT_GRAMS}(search_text) LIKE %s"] * len(grams))
        probe = f"SELECT id FROM {_TABLE} WHERE {pairs} AND {where} LIMIT {RARE_MATCHES + 1:d}"  # noqa: S608 - constants
        with connection.cursor() as cursor:
            cursor.execute(probe, [*grams, *likes])
            ids = [row[0] for row in cursor.fetchall()]
        if len(ids) <= RARE_MATCHES:
            found = list(Client.objects.filter(pk__in=ids).order_by("sort_name", "id"))
            return Page(
                items=found[offset : offset + size],
                number=page,
                has_next=len(found) > offset + size,
            )
        sql = (
            f"WITH m AS MATERIALIZED (SELECT * FROM {_TABLE} WHERE {where}) SELECT * FROM m {order}"  # noqa: S608 - constants
        )
        params = likes
    else:
        # MATERIALIZED keeps the planner from going back to walking the sort index.
        sql = (
            f"WITH m AS MATERIALIZED (SELECT * FROM {_TABLE} WHERE {where}) SELECT * FROM m {order}"  # noqa: S608 - constants
        )
        params = likes
    rows = list(Client.objects.raw(sql, params))
    return Page(items=rows[:size], number=page, has_next=len(rows) > size)
