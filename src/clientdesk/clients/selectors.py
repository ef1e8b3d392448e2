"""Reads for clients: lookup and search."""

import uuid

from django.core.exceptions import ValidationError
from django.db import connection

from clientdesk.clients.models import Client
from clientdesk.clients.search_index import SQLITE_FTS_TABLE
from clientdesk.core.errors import NotFound
from clientdesk.core.pagination import Page, paginate
from clientdesk.core.text import fold

MAX_QUERY_TERMS = 8
MAX_TERM_LENGTH = 64
# The trigram indexes serve terms of three characters or more.
TRIGRAM = 3
# How many clients, in page order, a search first looks through before asking the index.
WALK_ROWS = 2_000
_TABLE = Client._meta.db_table


def client_get(*, client_id: uuid.UUID | str) -> Client:
    try:
        return Client.objects.get(pk=client_id)
    except (Client.DoesNotExist, ValidationError, ValueError) as error:
        raise NotFound("No such client.") from error


def search_terms(query: str) -> list[str]:
    return [term[:MAX_TERM_LENGTH] for term in fold(query).split()[:MAX_QUERY_TERMS]]


def _contains(term: str) -> str:
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def client_search(
    *, query: str = "", page: int = 1, size: int = 25, walk: int = WALK_ROWS
) -> Page[Client]:
    """One page of clients whose name, email, phone or external id contain every word of
    `query`, in name order. Case and accents are ignored on both sides ("zoe" finds "Zoë").

    Two bounded steps instead of one planner guess: a common word fills the page from the
    first `walk` clients in page order (the sort index); otherwise the trigram index finds all
    matches and only those are sorted. Left to itself, PostgreSQL walks the sort index for
    common surnames and filters a million rows.
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
    if sqlite and indexed:
        match = " AND ".join('"' + t.replace('"', '""') + '"' for t in indexed)
        short = [_contains(t) for t in terms if len(t) < TRIGRAM]
        sql = (
            f"SELECT * FROM {_TABLE} WHERE rowid IN (SELECT rowid FROM {SQLITE_FTS_TABLE} "  # noqa: S608 - constants
            f"WHERE {SQLITE_FTS_TABLE} MATCH %s)"
            + "".join(f" AND {like}" for _ in short)
            + f" {order}"
        )
        params = [match, *short]
    elif sqlite:
        # Words too short for the index: one scan, then sort the matches. Walking the sort
        # index instead (the planner's choice) reads every row out of order: 12x slower.
        sql = f"SELECT * FROM {_TABLE} NOT INDEXED WHERE {where} {order}"  # noqa: S608 - constants
        params = likes
    else:
        # MATERIALIZED keeps the planner from going back to walking the sort index.
        sql = (
            f"WITH m AS MATERIALIZED (SELECT * FROM {_TABLE} WHERE {where}) SELECT * FROM m {order}"  # noqa: S608 - constants
        )
        params = likes
    rows = list(Client.objects.raw(sql, params))
    return Page(items=rows[:size], number=page, has_next=len(rows) > size)
